//! The Telco data and the scikit-learn reference runner shared by the tests.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The venv's Python, with scikit-learn; `make venv` creates it.
fn python_path() -> String {
    format!(
        "{}/../../.venv/bin/python",
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
    )
}

/// Named float vectors printed by a reference script, one `name v1 v2 ...` line each (`repr` of Python floats, which
/// Rust parses back exactly; `inf` and `nan` included).
pub(crate) type Reference = BTreeMap<String, Vec<f64>>;

/// Runs `script` with `input` on stdin and parses its `name values...` lines.
pub(crate) fn python(script: &str, input: &str) -> Reference {
    assert!(
        Path::new(&python_path()).exists(),
        "{} is missing: run `make venv` to install the Python reference tools (scikit-learn)",
        python_path()
    );
    let mut child = Command::new(python_path())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut parts = line.split(' ');
            let name = parts.next().unwrap().to_string();
            let values = parts.filter(|p| !p.is_empty()).map(|p| p.parse::<f64>().unwrap()).collect();
            (name, values)
        })
        .collect()
}

/// Values as one line of shortest round-trip decimals (`{:?}`), which Python's `float()` reads back exactly.
pub(crate) fn line(values: impl IntoIterator<Item = f64>) -> String {
    values.into_iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(" ")
}

/// Python prelude of every script: reads stdin lines as float arrays and prints named arrays.
pub(crate) const PRELUDE: &str = r#"
import sys, warnings
import numpy as np
warnings.simplefilter("error")
LINES = sys.stdin.read().split("\n")
def arr(i):
    return np.array([float(v) for v in LINES[i].split()])
def out(name, values):
    print(name, " ".join(repr(float(v)) for v in np.atleast_1d(values)))
"#;

/// `actual` equals `expected` within `tol * max(1, |expected|)` each, with the same length; infinities must match.
pub(crate) fn assert_close(what: &str, actual: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: {} values, scikit-learn has {}", actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let ok = if e.is_finite() { (a - e).abs() <= tol * e.abs().max(1.0) } else { a == e };
        assert!(ok, "{what}[{i}]: kiln {a:?}, scikit-learn {e:?}");
    }
}

fn data_path(file: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(file)
}

/// The Telco customer churn table (7043 rows): churned (1.0 / 0.0), tenure in months, monthly charges.
pub(crate) struct Telco {
    pub(crate) churn: Vec<f64>,
    pub(crate) tenure: Vec<f64>,
    pub(crate) monthly: Vec<f64>,
}

impl Telco {
    pub(crate) fn load() -> Telco {
        let text = std::fs::read_to_string(data_path("Telco-Customer-Churn_IBM.csv")).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (c_churn, c_tenure, c_monthly) = (col("Churn"), col("tenure"), col("MonthlyCharges"));
        let mut t = Telco { churn: Vec::new(), tenure: Vec::new(), monthly: Vec::new() };
        // the file has no quoted fields
        for l in lines.filter(|l| !l.is_empty()) {
            let f: Vec<&str> = l.split(',').collect();
            t.churn.push(match f[c_churn] {
                "Yes" => 1.0,
                "No" => 0.0,
                other => panic!("Churn {other:?}"),
            });
            t.tenure.push(f[c_tenure].parse().unwrap());
            t.monthly.push(f[c_monthly].parse().unwrap());
        }
        assert_eq!(t.churn.len(), 7043);
        t
    }

    /// A churn score made up for the tests (no model is fitted): a logistic function of tenure and monthly charges
    /// with hand-picked weights (short tenure and high charges churn more, as in the data).
    pub(crate) fn score(&self) -> Vec<f64> {
        self.tenure
            .iter()
            .zip(&self.monthly)
            .map(|(t, m)| {
                let z = -1.3 - 0.055 * (t - 32.0) + 0.025 * (m - 65.0);
                1.0 / (1.0 + (-z).exp())
            })
            .collect()
    }
}
