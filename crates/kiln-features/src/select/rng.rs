//! numpy's legacy `RandomState`: the MT19937 generator seeded by `init_genrand` and `standard_normal` by the polar
//! Box–Muller method, draw for draw. scikit-learn's mutual-information estimator adds `1e-10`-scaled noise from
//! `RandomState(random_state)`; reproducing the stream makes kiln's `seed` mean exactly what scikit-learn's
//! `random_state` means, so both estimators see the same noisy data.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// `numpy.random.RandomState(seed)` restricted to what the estimator needs.
pub(crate) struct NumpyRandomState {
    key: [u32; N],
    pos: usize,
    gauss: Option<f64>,
}

impl NumpyRandomState {
    /// `RandomState(seed)` for an integer seed (numpy's `mt19937_seed`).
    pub(crate) fn new(seed: u32) -> NumpyRandomState {
        let mut key = [0u32; N];
        let mut s = seed;
        for (pos, slot) in key.iter_mut().enumerate() {
            *slot = s;
            s = 1_812_433_253u32.wrapping_mul(s ^ (s >> 30)).wrapping_add(pos as u32 + 1);
        }
        NumpyRandomState { key, pos: N, gauss: None }
    }

    fn generate(&mut self) {
        let twist = |a: u32, b: u32, c: u32| {
            let y = (a & UPPER_MASK) | (b & LOWER_MASK);
            c ^ (y >> 1) ^ (0u32.wrapping_sub(y & 1) & MATRIX_A)
        };
        for i in 0..N - M {
            self.key[i] = twist(self.key[i], self.key[i + 1], self.key[i + M]);
        }
        for i in N - M..N - 1 {
            self.key[i] = twist(self.key[i], self.key[i + 1], self.key[i + M - N]);
        }
        self.key[N - 1] = twist(self.key[N - 1], self.key[0], self.key[M - 1]);
        self.pos = 0;
    }

    fn next_u32(&mut self) -> u32 {
        if self.pos == N {
            self.generate();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A uniform double in `[0, 1)` with 53 random bits (numpy's `legacy_double`).
    fn next_double(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// One draw of `standard_normal` (numpy's `legacy_gauss`: the polar method, the second value of each pair
    /// kept for the next call).
    pub(crate) fn standard_normal(&mut self) -> f64 {
        if let Some(g) = self.gauss.take() {
            return g;
        }
        loop {
            let x1 = 2.0 * self.next_double() - 1.0;
            let x2 = 2.0 * self.next_double() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.gauss = Some(f * x1);
                return f * x2;
            }
        }
    }
}
