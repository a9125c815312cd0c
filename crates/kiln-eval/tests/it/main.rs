//! kiln-eval against scikit-learn on real data: classification metrics, curves and the F1 threshold on the IBM Telco
//! churn table, and the shuffled, stratified and time-series splitters. The reference values are computed at test
//! time by scikit-learn 1.9.1 in `.venv` from the very same vectors (passed as shortest round-trip decimals).

mod classification;
mod reference;
mod splits;
