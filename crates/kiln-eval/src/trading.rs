//! A trading simulation of out-of-sample price forecasts, and the finance metrics of its returns.
//!
//! The rule, with no look-ahead: the forecast made at period t's close (from data up to t) sets the position held
//! from t's close to t+1's close, traded at t's close; it earns the price's return from t to t+1. Long `fraction` of
//! equity when the predicted return (forecast / price at t - 1) exceeds `threshold`, short `fraction` when it is
//! below `-threshold` and `long_short` is set, flat otherwise. Every change of position pays `commission` (a fraction
//! of the traded value) plus `slippage_bps`, on the traded fraction of equity. The benchmark buys and holds from the
//! first period, paying the same costs once on entry.
//!
//! The metrics follow quantstats 0.0.86 (`qs.stats`), with `periods` = periods per year: total return
//! (compounded), CAGR (years = periods / periods per year), annualised volatility (sample sd), Sharpe and Sortino
//! (returns in excess of the per-period risk-free rate `(1 + rf)^(1/periods) - 1`; Sortino's downside deviation
//! over all periods), max drawdown (equity from 1 at the start), Calmar (CAGR / |max drawdown|). kiln adds the
//! longest drawdown in periods, hit rate (periods in the market that earned more than 0), trades (position
//! changes), turnover (the traded value over the backtest as a multiple of equity) and exposure (share of periods in
//! the market).

use serde::{Deserialize, Serialize};

use crate::{EvalError, pairwise_sum};

/// How forecasts become positions, and what trading costs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradingSpec {
    /// the predicted return a position needs (0: any predicted rise)
    #[serde(default)]
    pub threshold: f64,
    /// short when the predicted return is below `-threshold` (default: flat)
    #[serde(default)]
    pub long_short: bool,
    /// the fraction of equity a position takes (default 1)
    #[serde(default = "one")]
    pub fraction: f64,
    /// the equity at the start (default 100,000)
    #[serde(default = "initial_capital")]
    pub initial_capital: f64,
    /// cost of a trade as a fraction of its value (e.g. 0.001 = 10 bp)
    #[serde(default)]
    pub commission: f64,
    /// slippage of a trade in basis points of its value
    #[serde(default)]
    pub slippage_bps: f64,
    /// periods per year for annualising; inferred from the data's spacing when absent
    #[serde(default)]
    pub periods_per_year: Option<f64>,
    /// the annual risk-free rate of Sharpe and Sortino (default 0)
    #[serde(default)]
    pub risk_free_rate: f64,
}

fn one() -> f64 {
    1.0
}

fn initial_capital() -> f64 {
    100_000.0
}

impl Default for TradingSpec {
    fn default() -> TradingSpec {
        TradingSpec {
            threshold: 0.0,
            long_short: false,
            fraction: 1.0,
            initial_capital: initial_capital(),
            commission: 0.0,
            slippage_bps: 0.0,
            periods_per_year: None,
            risk_free_rate: 0.0,
        }
    }
}

impl TradingSpec {
    /// Checks the values, naming the key (`backtest.trading.<key>`).
    ///
    /// # Errors
    /// [`EvalError::InvalidSpec`] for a value out of range.
    pub fn validate(&self) -> Result<(), EvalError> {
        let bad = |key: &str, reason: &str| {
            Err(EvalError::InvalidSpec { key: format!("backtest.trading.{key}"), reason: reason.to_string() })
        };
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            return bad("threshold", "must be a number >= 0");
        }
        if !(self.fraction.is_finite() && self.fraction > 0.0 && self.fraction <= 1.0) {
            return bad("fraction", "must be in (0, 1]");
        }
        if !(self.initial_capital.is_finite() && self.initial_capital > 0.0) {
            return bad("initial_capital", "must be a number > 0");
        }
        if !(self.commission.is_finite() && (0.0..1.0).contains(&self.commission)) {
            return bad("commission", "must be a fraction in [0, 1)");
        }
        if !(self.slippage_bps.is_finite() && self.slippage_bps >= 0.0) {
            return bad("slippage_bps", "must be a number >= 0");
        }
        if let Some(p) = self.periods_per_year
            && !(p.is_finite() && p > 0.0)
        {
            return bad("periods_per_year", "must be a number > 0");
        }
        if !(self.risk_free_rate.is_finite() && self.risk_free_rate > -1.0) {
            return bad("risk_free_rate", "must be a number > -1");
        }
        Ok(())
    }

    /// The cost of trading `traded` (a fraction of equity).
    fn cost(&self, traded: f64) -> f64 {
        traded * (self.commission + self.slippage_bps / 10_000.0)
    }
}

/// The finance metrics of one return series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TradingMetrics {
    pub total_return: f64,
    pub cagr: f64,
    pub volatility: f64,
    pub sharpe: f64,
    pub sortino: f64,
    pub max_drawdown: f64,
    /// the longest stretch below a previous peak, in periods
    pub max_drawdown_periods: usize,
    pub calmar: f64,
    pub hit_rate: f64,
    pub trades: usize,
    pub turnover: f64,
    pub exposure: f64,
    pub final_equity: f64,
}

impl TradingMetrics {
    /// (name, value) pairs, in the order a table shows them.
    pub fn iter(&self) -> Vec<(&'static str, f64)> {
        #[allow(clippy::cast_precision_loss)]
        let n = |v: usize| v as f64;
        vec![
            ("total_return", self.total_return),
            ("cagr", self.cagr),
            ("volatility", self.volatility),
            ("sharpe", self.sharpe),
            ("sortino", self.sortino),
            ("max_drawdown", self.max_drawdown),
            ("max_drawdown_periods", n(self.max_drawdown_periods)),
            ("calmar", self.calmar),
            ("hit_rate", self.hit_rate),
            ("trades", n(self.trades)),
            ("turnover", self.turnover),
            ("exposure", self.exposure),
            ("final_equity", self.final_equity),
        ]
    }
}

/// A simulated strategy and its buy-and-hold benchmark.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    /// the position held from each period's close to the next (fraction of equity; negative: short)
    pub positions: Vec<f64>,
    /// the strategy's return of each period, after costs
    pub returns: Vec<f64>,
    /// buy and hold's return of each period (entry costs in the first)
    pub benchmark_returns: Vec<f64>,
    /// equity after each period, from `initial_capital`
    pub equity: Vec<f64>,
    pub benchmark_equity: Vec<f64>,
    /// the fall from the running peak after each period (0 at a peak, -0.25 a quarter below it; the starting
    /// equity is the first peak)
    pub drawdown: Vec<f64>,
    pub benchmark_drawdown: Vec<f64>,
    pub periods_per_year: f64,
    pub strategy: TradingMetrics,
    pub benchmark: TradingMetrics,
}

/// Simulates the rule of the module documentation over time-ordered periods: `price` at each period's close,
/// `forecast` of a later price made at that close, `next_price` at the next period's close.
///
/// # Errors
/// [`EvalError::InvalidSpec`] for a bad spec; [`EvalError::Empty`] with no period; [`EvalError::NonFinite`] /
/// [`EvalError::InvalidSpec`] (`price`) for a price that is not finite and positive, which no trading simulation can
/// use (a target that is not a price).
pub fn simulate(
    price: &[f64],
    forecast: &[f64],
    next_price: &[f64],
    periods_per_year: f64,
    spec: &TradingSpec,
) -> Result<Simulation, EvalError> {
    spec.validate()?;
    let n = price.len();
    if n == 0 {
        return Err(EvalError::Empty { input: "trading periods" });
    }
    if forecast.len() != n || next_price.len() != n {
        return Err(EvalError::LengthMismatch { y_true: n, y_pred: forecast.len().min(next_price.len()) });
    }
    if let Some(p) = price.iter().chain(next_price).find(|p| !(p.is_finite() && **p > 0.0)) {
        return Err(EvalError::InvalidSpec {
            key: "backtest.trading".to_string(),
            reason: format!("trading needs a price series (finite and > 0), but the target holds {p}"),
        });
    }
    let ppy = spec.periods_per_year.unwrap_or(periods_per_year);
    let mut positions = Vec::with_capacity(n);
    let mut returns = Vec::with_capacity(n);
    let mut previous = 0.0;
    let mut traded_total = 0.0;
    let mut trades = 0;
    for t in 0..n {
        let predicted = forecast[t] / price[t] - 1.0;
        let position = if predicted > spec.threshold {
            spec.fraction
        } else if spec.long_short && predicted < -spec.threshold {
            -spec.fraction
        } else {
            0.0
        };
        let traded = (position - previous).abs();
        if traded > 0.0 {
            trades += 1;
        }
        traded_total += traded;
        let realised = next_price[t] / price[t] - 1.0;
        returns.push(position * realised - spec.cost(traded));
        positions.push(position);
        previous = position;
    }
    let benchmark_returns: Vec<f64> = (0..n)
        .map(|t| {
            let realised = next_price[t] / price[t] - 1.0;
            if t == 0 { realised - spec.cost(1.0) } else { realised }
        })
        .collect();
    let in_market: Vec<bool> = positions.iter().map(|p| *p != 0.0).collect();
    let strategy = metrics(&returns, &in_market, trades, traded_total, ppy, spec);
    let benchmark = metrics(&benchmark_returns, &vec![true; n], 1, 1.0, ppy, spec);
    Ok(Simulation {
        equity: equity_curve(&returns, spec.initial_capital),
        benchmark_equity: equity_curve(&benchmark_returns, spec.initial_capital),
        drawdown: drawdown_curve(&returns),
        benchmark_drawdown: drawdown_curve(&benchmark_returns),
        positions,
        returns,
        benchmark_returns,
        periods_per_year: ppy,
        strategy,
        benchmark,
    })
}

/// The fall from the running peak after each period, equity from 1 before the first period (so that a loss in the
/// first period is a drawdown, as quantstats counts it).
fn drawdown_curve(returns: &[f64]) -> Vec<f64> {
    let (mut peak, mut equity) = (1.0_f64, 1.0_f64);
    returns
        .iter()
        .map(|r| {
            equity *= 1.0 + r;
            peak = peak.max(equity);
            equity / peak - 1.0
        })
        .collect()
}

fn equity_curve(returns: &[f64], start: f64) -> Vec<f64> {
    let mut equity = start;
    returns
        .iter()
        .map(|r| {
            equity *= 1.0 + r;
            equity
        })
        .collect()
}

#[allow(clippy::cast_precision_loss)]
fn metrics(
    returns: &[f64],
    in_market: &[bool],
    trades: usize,
    traded: f64,
    ppy: f64,
    spec: &TradingSpec,
) -> TradingMetrics {
    let n = returns.len() as f64;
    let growth = returns.iter().fold(1.0, |g, r| g * (1.0 + r));
    let total_return = growth - 1.0;
    let years = n / ppy;
    let cagr = if growth < 0.0 { f64::NAN } else { growth.abs().powf(1.0 / years) - 1.0 };
    let mean = |v: &[f64]| pairwise_sum(v) / v.len() as f64;
    let sd = |v: &[f64]| {
        let m = mean(v);
        let squares: Vec<f64> = v.iter().map(|x| (x - m) * (x - m)).collect();
        (pairwise_sum(&squares) / (v.len() as f64 - 1.0)).sqrt()
    };
    let volatility = sd(returns) * ppy.sqrt();
    let rf = if spec.risk_free_rate == 0.0 { 0.0 } else { (1.0 + spec.risk_free_rate).powf(1.0 / ppy) - 1.0 };
    let excess: Vec<f64> = returns.iter().map(|r| r - rf).collect();
    let sharpe = mean(&excess) / sd(&excess) * ppy.sqrt();
    let downside_squares: Vec<f64> = excess.iter().filter(|r| **r < 0.0).map(|r| r * r).collect();
    let downside = (pairwise_sum(&downside_squares) / n).sqrt();
    let sortino = if downside == 0.0 { f64::NAN } else { mean(&excess) / downside * ppy.sqrt() };
    let drawdown = drawdown_curve(returns);
    let max_drawdown = drawdown.iter().copied().fold(0.0_f64, f64::min);
    // the longest run of periods below a previous peak
    let (mut below, mut longest) = (0usize, 0usize);
    for d in &drawdown {
        below = if *d < 0.0 { below + 1 } else { 0 };
        longest = longest.max(below);
    }
    let calmar = cagr / max_drawdown.abs();
    let market: Vec<f64> = returns.iter().zip(in_market).filter(|(_, m)| **m).map(|(r, _)| *r).collect();
    let hit_rate = if market.is_empty() {
        f64::NAN
    } else {
        market.iter().filter(|r| **r > 0.0).count() as f64 / market.len() as f64
    };
    TradingMetrics {
        total_return,
        cagr,
        volatility,
        sharpe,
        sortino,
        max_drawdown,
        max_drawdown_periods: longest,
        calmar,
        hit_rate,
        trades,
        turnover: traded,
        exposure: in_market.iter().filter(|m| **m).count() as f64 / n,
        final_equity: spec.initial_capital * growth,
    }
}

/// Periods per year implied by the spacing of `times` (UTC ms, ascending): the median spacing, with daily rows
/// that skip weekends counted as trading days (252 a year), other daily rows as 365, and other spacings as the
/// number that fits in 365 days (hourly: 8760, weekly: 52, monthly: 12).
pub fn periods_per_year(times: &[i64]) -> Option<f64> {
    let mut steps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0).collect();
    if steps.is_empty() {
        return None;
    }
    steps.sort_unstable();
    let median = steps[steps.len() / 2];
    const DAY: i64 = 86_400_000;
    #[allow(clippy::cast_precision_loss)]
    let per_year = |step: f64| (365.0 * DAY as f64 / step).round();
    if median == DAY {
        // business days: weekend gaps of 3 days are common (at least one in ten steps)
        let weekend = steps.iter().filter(|d| **d == 3 * DAY).count();
        return Some(if weekend * 10 >= steps.len() { 252.0 } else { 365.0 });
    }
    #[allow(clippy::cast_precision_loss)]
    let median = median as f64;
    // calendar months and quarters vary in length
    for (days, per) in [(30.44, 12.0), (91.31, 4.0), (365.25, 1.0)] {
        #[allow(clippy::cast_precision_loss)]
        if (median / DAY as f64 - days).abs() <= days * 0.1 {
            return Some(per);
        }
    }
    Some(per_year(median))
}
