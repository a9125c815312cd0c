//! The ML traits, in linfa's shape: an [`Estimator`] holds checked hyperparameters and `fit` returns a new
//! [`Predictor`], so an unfitted model cannot predict. Data crosses them as a dense row-major [`Matrix`].

/// A dense row-major matrix of features with their names. Missing values are NaN.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matrix {
    pub names: Vec<String>,
    pub data: Vec<f64>,
    pub n_rows: usize,
}

impl Matrix {
    pub fn new(names: Vec<String>, data: Vec<f64>) -> Matrix {
        let n_cols = names.len().max(1);
        let n_rows = if names.is_empty() { 0 } else { data.len() / n_cols };
        debug_assert_eq!(n_rows * names.len(), data.len());
        Matrix { names, data, n_rows }
    }

    pub fn n_cols(&self) -> usize {
        self.names.len()
    }

    pub fn row(&self, i: usize) -> &[f64] {
        let c = self.n_cols();
        &self.data[i * c..(i + 1) * c]
    }

    /// Rows `start..end`.
    pub fn rows(&self, start: usize, end: usize) -> Matrix {
        let c = self.n_cols();
        Matrix { names: self.names.clone(), data: self.data[start * c..end * c].to_vec(), n_rows: end - start }
    }

    /// The given rows, in the given order.
    pub fn take_rows(&self, rows: &[usize]) -> Matrix {
        let c = self.n_cols();
        let mut data = Vec::with_capacity(rows.len() * c);
        for &i in rows {
            data.extend_from_slice(&self.data[i * c..(i + 1) * c]);
        }
        Matrix { names: self.names.clone(), data, n_rows: rows.len() }
    }

    /// One column's values, copied out.
    pub fn column(&self, j: usize) -> Vec<f64> {
        (0..self.n_rows).map(|i| self.data[i * self.n_cols() + j]).collect()
    }
}

/// Hyperparameters that were checked and can fit a model.
pub trait Estimator {
    type Fitted: Predictor;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Fits on `x`/`y`; `valid` is an optional validation set for early stopping, never the test set.
    ///
    /// # Errors
    /// The adapter's own error when the library refuses the data or fails.
    fn fit(&self, x: &Matrix, y: &[f64], valid: Option<(&Matrix, &[f64])>) -> Result<Self::Fitted, Self::Error>;
}

/// A fitted model.
pub trait Predictor {
    type Error: std::error::Error + Send + Sync + 'static;

    /// One output per row of `x`, in the label's space (after any target transform, before inversion).
    ///
    /// # Errors
    /// The adapter's own error, for example a column count that does not match the fitted model.
    fn predict(&self, x: &Matrix) -> Result<Vec<f64>, Self::Error>;

    /// The feature names the model was fitted on, in order.
    fn feature_names(&self) -> &[String];
}
