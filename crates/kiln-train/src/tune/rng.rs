//! The samplers' random numbers: a Mersenne Twister (MT19937) drawn the way numpy's legacy `RandomState` draws,
//! so that one seed gives kiln and Optuna the same stream. Only the draws the samplers use are here.

/// MT19937 with numpy's legacy seeding (an integer seed, `init_genrand`) and its derived draws: 53-bit doubles,
/// `uniform`, `choice` with probabilities, and the masked rejection `random_interval` that `shuffle` uses.
#[derive(Clone)]
pub struct Mt19937 {
    key: [u32; 624],
    pos: usize,
}

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mt19937").field("pos", &self.pos).finish_non_exhaustive()
    }
}

impl Mt19937 {
    /// The generator `numpy.random.RandomState(seed)` starts from (numpy takes seeds in `0..2**32`).
    pub fn new(seed: u32) -> Self {
        let mut key = [0u32; 624];
        let mut s = seed;
        for (i, k) in key.iter_mut().enumerate() {
            *k = s;
            s = 1_812_433_253u32.wrapping_mul(s ^ (s >> 30)).wrapping_add(i as u32 + 1);
        }
        Mt19937 { key, pos: 624 }
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
