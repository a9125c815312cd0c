# Reference values for the preprocessing tests (crates/kiln-features/src/preprocess/tests.rs), computed by
# scikit-learn and pandas on the Telco churn CSV. Usage: python reference.py <csv>; prints one JSON object.
#
# The scenario must match `scenario()` in tests.rs: the numeric columns parsed as floats (blank = NaN), the
# others as strings; PaymentMethod missing on every row % 13 == 0; from row TRAIN on, InternetService is the
# unseen "Satellite" on rows % 17 == 0 and Contract the unseen "Four year" on rows % 101 == 0. Every estimator
# is fitted on rows [0, TRAIN) and transforms all rows.
import json
import sys
import warnings

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, RobustScaler, StandardScaler

warnings.simplefilter("ignore")

TRAIN = 5000
NUMERIC = ["SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges"]
SCALED = ["tenure", "MonthlyCharges", "TotalCharges"]
ENCODED = ["Contract", "PaymentMethod", "InternetService", "gender"]


def scenario(path):
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    df = pd.DataFrame(index=raw.index)
    for c in raw.columns:
        if c in NUMERIC:
            df[c] = pd.to_numeric(raw[c].str.strip().replace("", np.nan)).astype(float)
        else:
            df[c] = raw[c].astype(object)
    rows = np.arange(len(df))
    df.loc[rows % 13 == 0, "PaymentMethod"] = np.nan
    df.loc[(rows >= TRAIN) & (rows % 17 == 0), "InternetService"] = "Satellite"
    df.loc[(rows >= TRAIN) & (rows % 101 == 0), "Contract"] = "Four year"
    return df


def num(values):
    return [None if np.isnan(v) else float(v) for v in np.asarray(values, dtype=float)]


def labels(values):
    return [None if pd.isna(v) else str(v) for v in values]


def main():
    df = scenario(sys.argv[1])
    train = df.iloc[:TRAIN]
    out = {"n_rows": len(df)}

    for key, est in [("standard", StandardScaler()), ("minmax", MinMaxScaler()), ("robust", RobustScaler())]:
        est.fit(train[SCALED])
        if key == "standard":
            center, scale = est.mean_, est.scale_
        elif key == "minmax":
            center, scale = est.data_min_, est.data_range_
        else:
            center, scale = est.center_, est.scale_
        x = est.transform(df[SCALED])
        constant = np.full((50, 1), 0.1)
        out["scale_" + key] = {
            "center": num(center),
            "scale": num(scale),
            "out": [num(x[:, j]) for j in range(len(SCALED))],
            "constant": num(type(est)().fit_transform(constant)[:, 0]),
        }

    for strategy, kw in [("mean", {}), ("median", {}), ("most_frequent", {}), ("constant", {"fill_value": -1.5})]:
        imp = SimpleImputer(strategy=strategy, **kw).fit(train[["TotalCharges"]])
        out["impute_" + strategy] = {
            "stat": float(imp.statistics_[0]),
            "out": num(imp.transform(df[["TotalCharges"]])[:, 0]),
        }
    for strategy, kw in [("most_frequent", {}), ("constant", {"fill_value": "missing"})]:
        imp = SimpleImputer(strategy=strategy, missing_values=np.nan, **kw).fit(train[["PaymentMethod"]])
        out["impute_cat_" + strategy] = {
            "stat": str(imp.statistics_[0]),
            "out": labels(imp.transform(df[["PaymentMethod"]])[:, 0]),
        }
    # ties: scikit-learn keeps the smallest value
    ties_num = np.array([[3.0], [1.0], [3.0], [1.0], [np.nan], [2.0]])
    ties_cat = np.array([["b"], ["a"], ["b"], ["a"], [np.nan], ["c"]], dtype=object)
    out["ties"] = {
        "num": float(SimpleImputer(strategy="most_frequent").fit(ties_num).statistics_[0]),
        "cat": str(SimpleImputer(strategy="most_frequent").fit(ties_cat).statistics_[0]),
    }

    for drop in [None, "first", "if_binary"]:
        enc = OneHotEncoder(handle_unknown="ignore", drop=drop, sparse_output=False).fit(train[ENCODED])
        x = enc.transform(df[ENCODED])
        out["one_hot_" + str(drop).lower()] = {
            "names": [str(n) for n in enc.get_feature_names_out()],
            "out": [num(x[:, j]) for j in range(x.shape[1])],
        }

    enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit(train[ENCODED])
    x = enc.transform(df[ENCODED])
    out["ordinal"] = {
        "categories": [[str(c) for c in cats if not pd.isna(c)] for cats in enc.categories_],
        "out": [num(x[:, j]) for j in range(x.shape[1])],
    }

    tenure_edges = [0, 12, 24, 48, np.inf]
    tenure_labels = ["New", "Medium", "Long", "Very_Long"]
    charge_edges = [18.25, 35.5, 70.7, 89.85, 118.75]
    charge_labels = ["low", "mid", "high", "top"]
    out["bin"] = {
        "tenure_right": labels(pd.cut(df["tenure"], tenure_edges, labels=tenure_labels)),
        "tenure_left": labels(pd.cut(df["tenure"], tenure_edges, labels=tenure_labels, right=False)),
        "tenure_lowest": labels(pd.cut(df["tenure"], tenure_edges, labels=tenure_labels, include_lowest=True)),
        "charges_right": labels(pd.cut(df["MonthlyCharges"], charge_edges, labels=charge_labels)),
        "charges_left": labels(pd.cut(df["MonthlyCharges"], charge_edges, labels=charge_labels, right=False)),
    }

    # forward fill of rows [TRAIN, n) continuing the training rows; rows TRAIN-1 and TRAIN are made missing
    gaps = df[["TotalCharges", "PaymentMethod"]].copy()
    gaps.iloc[[TRAIN - 1, TRAIN], :] = np.nan
    filled = gaps.ffill().iloc[TRAIN:]
    out["ffill"] = {"num": num(filled["TotalCharges"]), "cat": labels(filled["PaymentMethod"])}

    ratio = (df["MonthlyCharges"] / df["tenure"]).replace([np.inf, -np.inf], np.nan)
    out["ratio"] = num(ratio)
    out["product"] = num(df["tenure"] * df["MonthlyCharges"])

    json.dump(out, sys.stdout, allow_nan=False)


main()
