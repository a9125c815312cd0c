//! The truncated normal the Parzen estimators are made of, to double precision: `erf`/`erfc` (fdlibm's rational
//! approximations, as C libraries and Python's `math` compute them), `log Phi`, the log mass of an interval, the
//! log density and the inverse CDF (Newton on `log Phi`), with the branch structure of Optuna's `_truncnorm`, so
//! that kiln and Optuna agree to the last few bits. It does not draw: callers bring the uniform quantiles.

// fdlibm's coefficients are kept as published (more digits than an f64 holds)
#![allow(clippy::excessive_precision)]

use std::f64::consts::{FRAC_1_SQRT_2, PI, SQRT_2};

/// `ln(sqrt(2 pi))`.
pub(crate) fn norm_pdf_log_c() -> f64 {
    (2.0 * PI).sqrt().ln()
}

// fdlibm's s_erf.c coefficients (Sun Microsystems, 1993; the ones every libm ships).
const ERX: f64 = 8.450_629_115_104_675_292_97e-01;
const EFX: f64 = 1.283_791_670_955_125_863_16e-01;
const PP: [f64; 5] = [
    1.283_791_670_955_125_585_61e-01,
    -3.250_421_072_470_014_993_70e-01,
    -2.848_174_957_559_851_047_66e-02,
    -5.770_270_296_489_441_591_57e-03,
    -2.376_301_665_665_016_260_84e-05,
];
const QQ: [f64; 5] = [
    3.979_172_239_591_553_528_19e-01,
    6.502_224_998_876_729_444_85e-02,
    5.081_306_281_875_765_627_76e-03,
    1.324_947_380_043_216_445_26e-04,
    -3.960_228_278_775_368_123_20e-06,
];
const PA: [f64; 7] = [
    -2.362_118_560_752_659_440_77e-03,
    4.148_561_186_837_483_316_66e-01,
    -3.722_078_760_357_013_238_47e-01,
    3.183_466_199_011_617_536_74e-01,
    -1.108_946_942_823_966_774_76e-01,
    3.547_830_432_561_823_593_71e-02,
    -2.166_375_594_868_790_843_00e-03,
];
const QA: [f64; 6] = [
    1.064_208_804_008_442_282_86e-01,
    5.403_979_177_021_710_489_37e-01,
    7.182_865_441_419_626_628_68e-02,
    1.261_712_198_087_616_421_12e-01,
    1.363_708_391_202_905_073_62e-02,
    1.198_449_984_679_910_741_70e-02,
];
const RA: [f64; 8] = [
    -9.864_944_034_847_148_227_05e-03,
    -6.938_585_727_071_817_643_72e-01,
    -1.055_862_622_532_329_098_14e01,
    -6.237_533_245_032_600_603_96e01,
    -1.623_966_694_625_734_703_55e02,
    -1.846_050_929_067_110_359_94e02,
    -8.128_743_550_630_659_342_46e01,
    -9.814_329_344_169_145_485_92e00,
];
const SA: [f64; 8] = [
    1.965_127_166_743_925_712_92e01,
    1.376_577_541_435_190_426_00e02,
    4.345_658_774_752_292_288_21e02,
    6.453_872_717_332_678_803_36e02,
    4.290_081_400_275_678_333_86e02,
    1.086_350_055_417_794_351_34e02,
    6.570_249_770_319_281_701_35e00,
    -6.042_441_521_485_809_874_38e-02,
];
const RB: [f64; 7] = [
    -9.864_942_924_700_099_285_97e-03,
    -7.992_832_376_805_230_065_74e-01,
    -1.775_795_491_775_475_198_89e01,
    -1.606_363_848_558_219_160_62e02,
    -6.375_664_433_683_896_277_22e02,
    -1.025_095_131_611_077_249_54e03,
    -4.835_191_916_086_513_970_19e02,
];
const SB: [f64; 7] = [
    3.033_806_074_348_245_829_24e01,
    3.257_925_129_965_739_188_26e02,
    1.536_729_586_084_436_959_94e03,
    3.199_858_219_508_595_539_08e03,
    2.553_050_406_433_164_425_83e03,
    4.745_285_412_069_553_672_15e02,
    -2.244_095_244_658_581_833_62e01,
];

/// `c[0] + z c[1] + z^2 c[2] + ...` (Horner).
fn poly(c: &[f64], z: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &k| acc * z + k)
}

/// `1 + z c[0] + z^2 c[1] + ...`.
fn poly1(c: &[f64], z: f64) -> f64 {
    1.0 + z * poly(c, z)
}

/// `exp(-x^2 - 0.5625 + R/S) / x` for `x >= 1.25`, split as fdlibm does (the square of the high half is exact).
fn tail(x: f64) -> f64 {
    let s = 1.0 / (x * x);
    let (r, q) = if x < 1.0 / 0.35 { (poly(&RA, s), poly1(&SA, s)) } else { (poly(&RB, s), poly1(&SB, s)) };
    let z = f64::from_bits(x.to_bits() & 0xffff_ffff_0000_0000);
    (-z * z - 0.5625).exp() * ((z - x) * (z + x) + r / q).exp() / x
}

/// The error function.
pub(crate) fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let y = if a < 0.843_75 {
        if a < 2f64.powi(-28) {
            return x + EFX * x;
        }
        let z = x * x;
        return x + x * (poly(&PP, z) / poly1(&QQ, z));
    } else if a < 1.25 {
        let s = a - 1.0;
        ERX + poly(&PA, s) / poly1(&QA, s)
    } else if a >= 6.0 {
        1.0
    } else {
        1.0 - tail(a)
    };
    if x < 0.0 { -y } else { y }
}

/// The complementary error function, accurate in the right tail where `1 - erf` is not.
pub(crate) fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a < 0.843_75 {
        if a < 2f64.powi(-56) {
            return 1.0 - x;
        }
        let z = x * x;
        let y = poly(&PP, z) / poly1(&QQ, z);
        if x < 0.25 {
            return 1.0 - (x + x * y);
        }
        return 0.5 - (x * y + (x - 0.5));
    }
    if a < 1.25 {
        let s = a - 1.0;
        let pq = poly(&PA, s) / poly1(&QA, s);
        return if x >= 0.0 { (1.0 - ERX) - pq } else { 1.0 + (ERX + pq) };
    }
    if a < 28.0 {
        if x < -6.0 {
            return 2.0;
        }
        let r = tail(a);
        return if x > 0.0 { r } else { 2.0 - r };
    }
    if x > 0.0 { 0.0 } else { 2.0 }
}

/// The standard normal CDF of one value, through `erfc` in the tails (Optuna's `_ndtr_single`).
pub(crate) fn ndtr_single(a: f64) -> f64 {
    let x = a / SQRT_2;
    if x < -FRAC_1_SQRT_2 {
        0.5 * erfc(-x)
    } else if x < FRAC_1_SQRT_2 {
        0.5 + 0.5 * erf(x)
    } else {
        1.0 - 0.5 * erfc(x)
    }
}

/// The standard normal CDF through `erf` alone (Optuna's vectorised `_ndtr`, used for the central mass).
fn ndtr(a: f64) -> f64 {
    0.5 + 0.5 * erf(a / SQRT_2)
}

/// `ln Phi(a)`: through the CDF down to -20, the asymptotic series below.
pub(crate) fn log_ndtr(a: f64) -> f64 {
    if a > 6.0 {
        return -ndtr_single(-a);
    }
    if a > -20.0 {
        return ndtr_single(a).ln();
    }
    let log_lhs = -0.5 * (a * a) - (-a).ln() - 0.5 * (2.0 * PI).ln();
    let mut last: f64 = 0.0;
    let mut rhs = 1.0;
    let mut numerator = 1.0;
    let mut denom = 1.0;
    let denom_cons = 1.0 / (a * a);
    let mut sign = 1.0;
    let mut i = 0.0;
    while (last - rhs).abs() > f64::EPSILON {
        i += 1.0;
        last = rhs;
        sign = -sign;
        denom *= denom_cons;
        numerator *= 2.0 * i - 1.0;
        rhs += sign * numerator * denom;
    }
    log_lhs + rhs.ln()
}

/// `ln(exp(p) - exp(q))` for `p >= q`.
fn log_diff(p: f64, q: f64) -> f64 {
    p + (-(q - p).exp()).ln_1p()
}

/// numpy's `logaddexp`.
pub(crate) fn log_add_exp(x: f64, y: f64) -> f64 {
    if x == y {
        return x + std::f64::consts::LN_2;
    }
    let d = x - y;
    if d > 0.0 {
        x + (-d).exp().ln_1p()
    } else if d <= 0.0 {
        y + d.exp().ln_1p()
    } else {
        d
    }
}

/// `ln(Phi(b) - Phi(a))`, worked out in the left tail (by symmetry for an interval right of 0) and with `log1p`
/// for an interval around 0.
///
/// Remembered per thread: a study asks for the masses of the same kernels trial after trial (most observations keep
/// their bounds and bandwidth as the history grows), and each costs a few `erf`, `exp` and `log`. The memo is a
/// direct-mapped table of [`MASS_MEMO`] entries keyed by the arguments' bits, so it holds at most that many and a
/// collision only means computing again; the value is always the function's own.
pub(crate) fn log_gauss_mass(a: f64, b: f64) -> f64 {
    MASS_MEMO_TABLE.with(|memo| remembered_mass(&mut memo.borrow_mut(), a, b))
}

/// [`log_gauss_mass`] of each `(a, b)`, the memo borrowed once for all of them (a kernel list's masses).
pub(crate) fn log_gauss_masses(bounds: impl Iterator<Item = (f64, f64)>) -> Vec<f64> {
    MASS_MEMO_TABLE.with(|memo| {
        let mut memo = memo.borrow_mut();
        bounds.map(|(a, b)| remembered_mass(&mut memo, a, b)).collect()
    })
}

/// The memo's value for `(a, b)`, computed and kept when its slot holds another.
fn remembered_mass(memo: &mut Vec<MassSlot>, a: f64, b: f64) -> f64 {
    let key = (a.to_bits(), b.to_bits());
    // a multiplicative hash of both words, its top bits the slot
    let hash = (key.0 ^ key.1.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let slot = (hash >> (64 - MASS_MEMO_BITS)) as usize;
    if memo.is_empty() {
        memo.resize(MASS_MEMO, None);
    }
    match memo[slot] {
        Some((k, value)) if k == key => value,
        _ => {
            let value = log_gauss_mass_uncached(a, b);
            memo[slot] = Some((key, value));
            value
        }
    }
}

/// log2 of [`MASS_MEMO`].
const MASS_MEMO_BITS: u32 = 14;
/// Entries of [`log_gauss_mass`]'s memo (24 bytes each, 384 KiB per thread that tunes).
const MASS_MEMO: usize = 1 << MASS_MEMO_BITS;

/// One slot of the memo: the arguments' bits and the mass.
type MassSlot = Option<((u64, u64), f64)>;

thread_local! {
    static MASS_MEMO_TABLE: std::cell::RefCell<Vec<MassSlot>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`log_gauss_mass`] computed.
fn log_gauss_mass_uncached(a: f64, b: f64) -> f64 {
    if b <= 0.0 {
        log_diff(log_ndtr(b), log_ndtr(a))
    } else if a > 0.0 {
        log_diff(log_ndtr(-a), log_ndtr(-b))
    } else {
        (-ndtr(a) - ndtr(-b)).ln_1p()
    }
}

/// `x` with `ln Phi(x) = y` for each `y` (modified in place), by Newton from a tail or logistic guess; the loop
/// runs until every element has converged (relative 1e-8), as Optuna's batch does.
fn ndtri_exp(ys: &mut [f64]) {
    let log_c = norm_pdf_log_c();
    let approx_c = 3f64.sqrt() / PI;
    let flipped: Vec<bool> = ys.iter().map(|&y| y > -1e-2).collect();
    let zs: Vec<f64> = ys.iter().zip(&flipped).map(|(&y, &f)| if f { (-y.exp_m1()).ln() } else { y }).collect();
    for (x, &z) in ys.iter_mut().zip(&zs) {
        *x = if z < -5.0 { -(-2.0 * (z + log_c)).sqrt() } else { -approx_c * (-z).exp_m1().ln() };
    }
    for _ in 0..100 {
        let mut done = true;
        for (x, &z) in ys.iter_mut().zip(&zs) {
            let log_ndtr_x = log_ndtr(*x);
            let log_pdf_x = -0.5 * (*x * *x) - log_c;
            let dx = (log_ndtr_x - z) * (log_ndtr_x - log_pdf_x).exp();
            *x -= dx;
            done &= dx.abs() < 1e-8 * x.abs();
        }
        if done {
            break;
        }
    }
    for (x, f) in ys.iter_mut().zip(flipped) {
        if f {
            *x = -*x;
        }
    }
}

/// The inverse CDF of the standard normal truncated to `[a, b]` at quantile `q`, for a batch (one Newton loop for
/// the intervals left of 0 and one for the rest, as Optuna's `ppf`).
pub(crate) fn ppf(q: &[f64], a: &[f64], b: &[f64]) -> Vec<f64> {
    let n = q.len();
    let mut out = vec![0.0; n];
    let left: Vec<usize> = (0..n).filter(|&i| a[i] < 0.0).collect();
    let right: Vec<usize> = (0..n).filter(|&i| a[i].is_nan() || a[i] >= 0.0).collect();
    let mut ys: Vec<f64> =
        left.iter().map(|&i| log_add_exp(log_ndtr(a[i]), q[i].ln() + log_gauss_mass(a[i], b[i]))).collect();
    ndtri_exp(&mut ys);
    for (&i, y) in left.iter().zip(ys) {
        out[i] = y;
    }
    let mut ys: Vec<f64> =
        right.iter().map(|&i| log_add_exp(log_ndtr(-b[i]), (-q[i]).ln_1p() + log_gauss_mass(a[i], b[i]))).collect();
    ndtri_exp(&mut ys);
    for (&i, y) in right.iter().zip(ys) {
        out[i] = -y;
    }
    for i in 0..n {
        if q[i] == 0.0 {
            out[i] = a[i];
        }
        if q[i] == 1.0 {
            out[i] = b[i];
        }
        if a[i] == b[i] {
            out[i] = f64::NAN;
        }
    }
    out
}
