//! numpy's legacy `RandomState` in our own code: the Mersenne Twister (MT19937) seeded by `init_genrand` and the
//! draws kiln needs from it, draw for draw. One seed then means what numpy's means: the tuner's samplers suggest what
//! Optuna's suggest (Optuna draws from `RandomState`), and the mutual-information selector adds the same noise as
//! scikit-learn's `random_state`.

/// MT19937 with numpy's legacy seeding (an integer seed, `init_genrand`) and its derived draws: 53-bit doubles,
/// `uniform`, `standard_normal`, `choice` with probabilities, and the masked rejection `random_interval` that
/// `shuffle` uses.
#[derive(Clone)]
pub struct NumpyRandomState {
    key: [u32; 624],
    pos: usize,
    /// the second value of `standard_normal`'s last pair, kept for the next call
    gauss: Option<f64>,
}

impl std::fmt::Debug for NumpyRandomState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumpyRandomState").field("pos", &self.pos).finish_non_exhaustive()
    }
}

impl NumpyRandomState {
    /// The generator `numpy.random.RandomState(seed)` starts from (numpy takes seeds in `0..2**32`).
    pub fn new(seed: u32) -> Self {
        let mut key = [0u32; 624];
        let mut s = seed;
        for (i, k) in key.iter_mut().enumerate() {
            *k = s;
            s = 1_812_433_253u32.wrapping_mul(s ^ (s >> 30)).wrapping_add(i as u32 + 1);
        }
        NumpyRandomState { key, pos: 624, gauss: None }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX: u32 = 0x9908_b0df;
        for i in 0..624 {
            let y = (self.key[i] & UPPER) | (self.key[(i + 1) % 624] & LOWER);
            let mag = if y & 1 == 1 { MATRIX } else { 0 };
            self.key[i] = self.key[(i + 397) % 624] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// The next 32 tempered bits.
    pub fn next_u32(&mut self) -> u32 {
        if self.pos == 624 {
            self.twist();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A double in `[0, 1)` from 53 random bits (`random_sample`).
    pub fn next_f64(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// One draw of `standard_normal` (numpy's `legacy_gauss`: the polar method, the second value of each pair
    /// kept for the next call).
    pub fn standard_normal(&mut self) -> f64 {
        if let Some(g) = self.gauss.take() {
            return g;
        }
        loop {
            let x1 = 2.0 * self.next_f64() - 1.0;
            let x2 = 2.0 * self.next_f64() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.gauss = Some(f * x1);
                return f * x2;
            }
        }
    }

    /// `uniform(low, high)`: `low + (high - low) * u`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_f64()
    }

    /// An index in `0..=max` by masked rejection (numpy's `random_interval`, used by the legacy `shuffle`).
    pub fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16] {
            mask |= mask >> shift;
        }
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// numpy's legacy `shuffle` of a sequence: Fisher-Yates from the end.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.interval(i as u32) as usize;
            items.swap(i, j);
        }
    }

    /// `choice(len(p), p=p, size=n)`: the running sum of `p` scaled by its last value, then for each uniform
    /// draw the first index whose sum exceeds it (`searchsorted(side="right")`).
    pub fn choice_weighted(&mut self, p: &[f64], n: usize) -> Vec<usize> {
        let mut cdf = Vec::with_capacity(p.len());
        let mut acc = 0.0;
        for &w in p {
            acc += w;
            cdf.push(acc);
        }
        let last = acc;
        for c in &mut cdf {
            *c /= last;
        }
        (0..n)
            .map(|_| {
                let u = self.next_f64();
                cdf.partition_point(|&c| c <= u)
            })
            .collect()
    }
}
