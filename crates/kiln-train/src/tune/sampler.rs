//! The samplers behind one trait, split as Optuna splits them: a relative search space and a joint draw over it
//! (multivariate TPE), then an independent draw for each remaining parameter. [`RandomSampler`],
//! [`GridSampler`] and [`TpeSampler`] follow Optuna 4.9 to the draw: with the same seed and history they consume
//! their Mersenne Twister as Optuna's `RandomState` does, so they suggest what Optuna suggests. Values in and out
//! are internal representations. No storage, no objective.

use std::collections::BTreeMap;

use super::TuneError;
use super::parzen::{Observed, ParzenEstimator, ParzenParams, default_weights, total_order_key};
use super::space::{Distribution, ParamValue};
use super::trial::{Direction, FrozenTrial, TrialState};
use kiln_domain::{NumpyRandomState, RELATIVE_PARAMS_KEY};

/// Parameters by name, in name order (Optuna sorts a relative search space by name).
pub type SearchSpace = BTreeMap<String, Distribution>;

/// A sampler as Optuna's `BaseSampler`: `history` is the study's other trials (any state), `trial` the running
/// one being filled in.
pub trait Sampler {
    /// Called once when a trial starts, before anything is sampled (the grid sampler picks its grid point here).
    fn before_trial(&mut self, _history: &[FrozenTrial], _trial: &mut FrozenTrial) {}

    /// Whether the sampler has nothing new to give (a grid with every point taken); a study stops then.
    fn exhausted(&self, _history: &[FrozenTrial]) -> bool {
        false
    }

    /// Restores what the sampler keeps in a stored trial's system attributes, which kiln's storage port does not
    /// carry (a grid point's `grid_id`, recovered from the trial's params).
    fn recall(&self, _trial: &mut FrozenTrial) {}

    /// Whether a trial's relative draw is shared with the other workers (Optuna's TPE with `constant_liar` writes
    /// it to the trial's system attributes, so that their draws count it while it runs).
    fn shares_relative(&self) -> bool {
        false
    }

    /// The parameters to draw jointly with [`Sampler::sample_relative`]; empty for an independent sampler.
    fn infer_relative_space(&mut self, _history: &[FrozenTrial], _trial: &FrozenTrial) -> SearchSpace {
        SearchSpace::new()
    }

    /// A joint draw over `space` (internal values); empty when the sampler leaves them to independent draws.
    fn sample_relative(
        &mut self,
        _history: &[FrozenTrial],
        _direction: Direction,
        _trial: &FrozenTrial,
        _space: &SearchSpace,
    ) -> BTreeMap<String, f64> {
        BTreeMap::new()
    }

    /// One parameter's internal value.
    ///
    /// # Errors
    /// A parameter the sampler cannot give (the grid has no such parameter, or a value that is not in `dist`).
    fn sample_independent(
        &mut self,
        history: &[FrozenTrial],
        direction: Direction,
        trial: &FrozenTrial,
        name: &str,
        dist: &Distribution,
    ) -> Result<f64, TuneError>;
}

/// A new trial numbered `number` with every parameter of `space` drawn in the given order, as Optuna's
/// `study.ask()` followed by one `suggest_*` per parameter: a single-valued distribution gives its value, a
/// parameter of the relative draw takes it, any other is drawn independently.
///
/// # Errors
/// The sampler's.
pub fn sample_trial(
    sampler: &mut dyn Sampler,
    history: &[FrozenTrial],
    direction: Direction,
    number: i64,
    space: &[(String, Distribution)],
) -> Result<FrozenTrial, TuneError> {
    let mut draw = TrialDraw::start(sampler, history, number, BTreeMap::new());
    for (name, dist) in space {
        draw.suggest(sampler, history, direction, name, dist)?;
    }
    Ok(draw.trial)
}

/// A trial being drawn one parameter at a time (Optuna's `study.ask()`, then `suggest_*` calls whose space may
/// depend on earlier answers: a conditional space such as each model kind's own parameters). An enqueued trial's
/// fixed parameters take their given values; the relative draw is made at the first parameter that is neither
/// fixed nor single-valued, as Optuna makes it lazily (a trial whose parameters are all given draws nothing).
#[derive(Clone, Debug)]
pub struct TrialDraw {
    pub trial: FrozenTrial,
    /// the relative search space and its draw, once made
    relative: Option<(SearchSpace, BTreeMap<String, f64>)>,
    /// an enqueued trial's given values (Optuna's `fixed_params`), external
    fixed: BTreeMap<String, ParamValue>,
}

impl TrialDraw {
    /// Starts trial `number` (the sampler's `before_trial`), with the parameters `fixed` given when it was enqueued
    /// (external values by name, empty for a trial that was not; a name the trial never asks for is left unused, as
    /// Optuna leaves it).
    pub fn start(
        sampler: &mut dyn Sampler,
        history: &[FrozenTrial],
        number: i64,
        fixed: BTreeMap<String, ParamValue>,
    ) -> TrialDraw {
        let mut trial = FrozenTrial::running(number);
        sampler.before_trial(history, &mut trial);
        TrialDraw { trial, relative: None, fixed }
    }

    /// Draws parameter `name` from `dist` (its internal value), recorded in the trial.
    ///
    /// # Errors
    /// The sampler's; a given value that `dist` cannot represent (a choice it does not have, text for a number).
    pub fn suggest(
        &mut self,
        sampler: &mut dyn Sampler,
        history: &[FrozenTrial],
        direction: Direction,
        name: &str,
        dist: &Distribution,
    ) -> Result<f64, TuneError> {
        let value = if let Some(given) = self.fixed.get(name) {
            // outside the range is used as given, as Optuna uses it (with a warning there)
            dist.to_internal(given).map_err(|e| {
                TuneError::Space(format!("trial {}: the enqueued value of `{name}`: {e}", self.trial.number))
            })?
        } else if dist.single() {
            single_value(dist)
        } else {
            if self.relative.is_none() {
                let space = sampler.infer_relative_space(history, &self.trial);
                let relative = sampler.sample_relative(history, direction, &self.trial, &space);
                if !relative.is_empty() && sampler.shares_relative() {
                    // as Optuna's JSON of the external values, which its workers read too
                    let mut shared = serde_json::Map::new();
                    for (name, x) in &relative {
                        let Some(dist) = space.get(name) else { continue };
                        let value = dist.to_external(*x)?;
                        shared.insert(name.clone(), serde_json::json!(value));
                    }
                    self.trial.system_attrs.insert(RELATIVE_PARAMS_KEY.to_string(), serde_json::Value::Object(shared));
                }
                self.relative = Some((space, relative));
            }
            let (space, relative) = self.relative.as_ref().expect("the relative draw was just made");
            match relative.get(name).filter(|_| space.get(name) == Some(dist)) {
                Some(v) => *v,
                None => sampler.sample_independent(history, direction, &self.trial, name, dist)?,
            }
        };
        self.trial.params.insert(name.to_string(), value);
        self.trial.distributions.insert(name.to_string(), dist.clone());
        Ok(value)
    }
}

/// The internal value of a single-valued distribution.
fn single_value(dist: &Distribution) -> f64 {
    match dist {
        Distribution::Float { low, .. } => *low,
        Distribution::Int { low, .. } => *low as f64,
        Distribution::Categorical { .. } => 0.0,
    }
}

/// Independent uniform draws (Optuna's `RandomSampler`): uniform in the (log) range widened by half a step, then
/// rounded to the step; a categorical takes the largest of one uniform per choice.
#[derive(Clone, Debug)]
pub struct RandomSampler {
    rng: NumpyRandomState,
}

impl RandomSampler {
    pub fn new(seed: u32) -> Self {
        RandomSampler { rng: NumpyRandomState::new(seed) }
    }

    /// One internal value of `dist`.
    pub fn draw(&mut self, dist: &Distribution) -> f64 {
        match dist {
            Distribution::Categorical { choices } => {
                let mut best = (0, f64::NEG_INFINITY);
                for i in 0..choices.len() {
                    let u = self.rng.next_f64();
                    if u > best.1 {
                        best = (i, u);
                    }
                }
                best.0 as f64
            }
            Distribution::Float { low, high, log: true, .. } => {
                let v = self.rng.uniform(low.ln(), high.ln()).exp();
                if dist.single() { v } else { v.min(high.next_down()) }
            }
            Distribution::Float { low, high, step: Some(step), .. } => {
                let v = self.rng.uniform(low - 0.5 * step, high + 0.5 * step);
                (((v - low) / step).round_ties_even() * step + low).clamp(*low, *high)
            }
            Distribution::Float { low, high, .. } => {
                let v = self.rng.uniform(*low, *high);
                if dist.single() { v } else { v.min(high.next_down()) }
            }
            Distribution::Int { low, high, log: true, step } => {
                let half = 0.5 * *step as f64;
                let v = self.rng.uniform((*low as f64 - half).ln(), (*high as f64 + half).ln());
                v.exp().round_ties_even().clamp(*low as f64, *high as f64).trunc()
            }
            Distribution::Int { low, high, step, .. } => {
                let (low, high, step) = (*low as f64, *high as f64, *step as f64);
                let v = self.rng.uniform(low - 0.5 * step, high + 0.5 * step);
                (((v - low) / step).round_ties_even() * step + low).clamp(low, high).trunc()
            }
        }
    }
}

impl Sampler for RandomSampler {
    fn sample_independent(
        &mut self,
        _history: &[FrozenTrial],
        _direction: Direction,
        _trial: &FrozenTrial,
        _name: &str,
        dist: &Distribution,
    ) -> Result<f64, TuneError> {
        Ok(self.draw(dist))
    }
}

/// Every combination of the given values once (Optuna's `GridSampler`): the grid in `itertools.product` order
/// over the sorted names, shuffled by the seed; trial `n` takes grid point `n` while `n` is below the grid's size,
/// later trials a random point no finished or running trial of the history holds. The point is kept in the
/// trial's `grid_id` and `search_space` system attributes, as Optuna keeps it.
#[derive(Clone, Debug)]
pub struct GridSampler {
    space: BTreeMap<String, Vec<ParamValue>>,
    grids: Vec<Vec<ParamValue>>,
    rng: NumpyRandomState,
}

impl GridSampler {
    pub fn new(space: BTreeMap<String, Vec<ParamValue>>, seed: u32) -> Self {
        let mut grids: Vec<Vec<ParamValue>> = vec![Vec::new()];
        for values in space.values() {
            grids = grids
                .into_iter()
                .flat_map(|g| {
                    values.iter().map(move |v| {
                        let mut g = g.clone();
                        g.push(v.clone());
                        g
                    })
                })
                .collect();
        }
        let mut rng = NumpyRandomState::new(seed);
        rng.shuffle(&mut grids);
        GridSampler { space, grids, rng }
    }

    /// The grid points in the order trials take them.
    pub fn grids(&self) -> &[Vec<ParamValue>] {
        &self.grids
    }

    fn space_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.space).expect("grid values serialize to JSON")
    }

    /// Grid points no finished trial holds, less those running trials hold unless that leaves none.
    fn unvisited(&self, history: &[FrozenTrial]) -> Vec<usize> {
        let ours = self.space_json();
        let mut visited = vec![false; self.grids.len()];
        let mut running = vec![false; self.grids.len()];
        for t in history {
            let Some(id) = t.system_attrs.get("grid_id").and_then(serde_json::Value::as_u64) else { continue };
            if t.system_attrs.get("search_space") != Some(&ours) || id as usize >= self.grids.len() {
                continue;
            }
            if t.state.is_finished() {
                visited[id as usize] = true;
            } else if t.state == TrialState::Running {
                running[id as usize] = true;
            }
        }
        let open: Vec<usize> = (0..self.grids.len()).filter(|&i| !visited[i] && !running[i]).collect();
        if open.is_empty() { (0..self.grids.len()).filter(|&i| !visited[i]).collect() } else { open }
    }

    /// Whether every grid point has been evaluated.
    pub fn is_exhausted(&self, history: &[FrozenTrial]) -> bool {
        self.unvisited(history).is_empty()
    }
}

impl Sampler for GridSampler {
    fn exhausted(&self, history: &[FrozenTrial]) -> bool {
        self.is_exhausted(history)
    }

    fn recall(&self, trial: &mut FrozenTrial) {
        if trial.system_attrs.contains_key("grid_id") {
            return;
        }
        let mut point = Vec::with_capacity(self.space.len());
        for name in self.space.keys() {
            let (Some(&x), Some(dist)) = (trial.params.get(name), trial.distributions.get(name)) else { return };
            let Ok(v) = dist.to_external(x) else { return };
            point.push(v);
        }
        if let Some(id) = self.grids.iter().position(|g| *g == point) {
            trial.system_attrs.insert("search_space".into(), self.space_json());
            trial.system_attrs.insert("grid_id".into(), id.into());
        }
    }

    fn before_trial(&mut self, history: &[FrozenTrial], trial: &mut FrozenTrial) {
        if trial.system_attrs.contains_key("grid_id") {
            return;
        }
        let id = match usize::try_from(trial.number) {
            Ok(n) if n < self.grids.len() => n,
            _ => {
                let mut targets = self.unvisited(history);
                if targets.is_empty() {
                    targets = (0..self.grids.len()).collect();
                }
                targets[self.rng.interval(targets.len() as u32 - 1) as usize]
            }
        };
        trial.system_attrs.insert("search_space".into(), self.space_json());
        trial.system_attrs.insert("grid_id".into(), id.into());
    }

    fn sample_independent(
        &mut self,
        _history: &[FrozenTrial],
        _direction: Direction,
        trial: &FrozenTrial,
        name: &str,
        dist: &Distribution,
    ) -> Result<f64, TuneError> {
        let id =
            trial.system_attrs.get("grid_id").and_then(serde_json::Value::as_u64).ok_or_else(|| {
                TuneError::Sampler("the trial has no grid point (`before_trial` was not called)".into())
            })?;
        let pos = self
            .space
            .keys()
            .position(|k| k == name)
            .ok_or_else(|| TuneError::Sampler(format!("the parameter `{name}` is not in the grid")))?;
        let value = &self.grids[id as usize][pos];
        dist.to_internal(value)
    }
}

/// TPE's settings, Optuna 4.9's defaults by [`Default`].
#[derive(Clone, Copy, Debug)]
pub struct TpeOptions {
    /// random draws until this many trials are complete or pruned.
    pub n_startup_trials: usize,
    /// draws from `l(x)` among which the best `log l - log g` is kept.
    pub n_ei_candidates: usize,
    /// how many of `n` trials go to `l(x)`.
    pub gamma: fn(usize) -> usize,
    pub weights: fn(usize) -> Vec<f64>,
    pub prior_weight: f64,
    pub consider_magic_clip: bool,
    pub consider_endpoints: bool,
    /// one joint estimator over the parameters every finished trial shares.
    pub multivariate: bool,
    /// Optuna's `constant_liar`: the other trials still running (with the parameters they were given) join the
    /// group of bad trials, so that workers drawing at the same time stay away from each other's points.
    pub constant_liar: bool,
    /// Optuna's `group` (with `multivariate`): the parameters are split into groups that always appear together in
    /// the finished trials (a conditional space: each model kind's own parameters, the shared ones), and each group
    /// is drawn jointly from the trials that have it, instead of drawing only the parameters every trial shares
    /// jointly and the rest one by one. Without `multivariate` it changes nothing.
    pub group: bool,
}

/// Optuna's `default_gamma`: `min(ceil(n / 10), 25)`.
pub fn default_gamma(n: usize) -> usize {
    (0.1 * n as f64).ceil().min(25.0) as usize
}

impl Default for TpeOptions {
    fn default() -> Self {
        TpeOptions {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            gamma: default_gamma,
            weights: default_weights,
            prior_weight: 1.0,
            consider_magic_clip: true,
            consider_endpoints: false,
            multivariate: false,
            constant_liar: false,
            group: false,
        }
    }
}

/// The tree-structured Parzen estimator (Optuna's `TPESampler`, single objective, no constraints): random draws
/// (its own [`RandomSampler`], seeded alike) until `n_startup_trials`; then the complete and pruned trials are split into the best `gamma(n)` (complete by value, then pruned by their last step, deepest
/// first, and its value) and the rest, a Parzen estimator is fitted to each, and of `n_ei_candidates` draws from
/// the good one the argmax of `log l(x) - log g(x)` is kept. Failed trials are ignored; so are running ones unless
/// [`TpeOptions::constant_liar`], which counts them among the rest (never among the best, and not in `n` of
/// `gamma(n)`).
#[derive(Clone, Debug)]
pub struct TpeSampler {
    options: TpeOptions,
    rng: NumpyRandomState,
    random: RandomSampler,
    /// the relative search space so far, as Optuna's `IntersectionSearchSpace` keeps it: the intersection over the
    /// complete and pruned trials numbered below the first number (the second field) that was not yet finished at
    /// the last look. A finished trial never changes, so only later ones are read again.
    relative: Option<SearchSpace>,
    relative_upto: i64,
    /// with [`TpeOptions::group`], the groups instead of the intersection, as Optuna's `_SearchSpaceGroup` keeps
    /// them over the same trials: disjoint, in the order they were split off, each trial's parameters a union of
    /// some of them
    groups: Vec<SearchSpace>,
    /// the finished trials as read so far, so that a draw does not read every past trial again
    seen: Seen,
}

/// What a [`TpeSampler`] keeps of the finished trials between draws. A finished trial never changes (the contract
/// Optuna's samplers rely on as well), so each is read once: its value, and each asked parameter's value in the
/// sampling space, kept sorted as trials come; a draw then gathers its groups' observations by trial number and
/// takes their order by value from the sorted list instead of sorting them again. The split of the last history
/// asked about is kept too: the independent draws of one trial share it. Every draw is the one the history would
/// give read afresh (`tests::the_kept_history_draws_as_a_fresh_read`).
#[derive(Clone, Debug, Default)]
struct Seen {
    /// by trial number: the value's bits (`Some(None)` for a pruned trial without one), once read finished
    read: Vec<Option<Option<u64>>>,
    /// by (parameter name, log scale)
    columns: BTreeMap<(String, bool), Column>,
    split: Option<KeptSplit>,
}

/// What a TPE draw is asked from: the complete and pruned `trials` of a history of `history_len` trials, as trial
/// `number` is drawn toward `direction`.
struct Draw<'h, 't> {
    trials: &'h [&'t FrozenTrial],
    /// the other running trials, for the constant liar (empty without it)
    running: &'h [&'t FrozenTrial],
    history_len: usize,
    number: i64,
    direction: Direction,
}

/// The last split a [`TpeSampler`] made: for which draw, and the two groups' trial numbers.
#[derive(Clone, Debug)]
struct KeptSplit {
    /// the trial being drawn, the history's length, its finished trials and the direction
    key: (i64, usize, usize, Direction),
    below: Vec<usize>,
    above: Vec<usize>,
}

/// One parameter's observations in the sampling space.
#[derive(Clone, Debug, Default)]
struct Column {
    /// by trial number: the internal value, its logarithm under log scale
    mu: Vec<Option<f64>>,
    /// (`total_order_key` of the value, trial number), sorted
    sorted: Vec<(i64, usize)>,
}

impl Column {
    fn add(&mut self, number: usize, value: f64, log: bool) {
        let mu = if log { value.ln() } else { value };
        if self.mu.len() <= number {
            self.mu.resize(number + 1, None);
        }
        self.mu[number] = Some(mu);
        let key = (total_order_key(mu), number);
        let place = self.sorted.partition_point(|k| *k < key);
        self.sorted.insert(place, key);
    }

    fn get(&self, number: usize) -> Option<f64> {
        self.mu.get(number).copied().flatten()
    }
}

/// A trial's number as an index: [`TpeSampler::sample`] keeps a history with a negative one off the kept path.
fn index(t: &FrozenTrial) -> usize {
    usize::try_from(t.number).expect("trial numbers on the kept path are checked to be 0-based")
}

impl Seen {
    /// Reads the finished trials of `trials` not read before (all of them again if one read before has changed:
    /// another study's history).
    fn refresh(&mut self, trials: &[&FrozenTrial]) {
        let value_of = |t: &FrozenTrial| t.value.map(f64::to_bits);
        let changed =
            trials.iter().any(|t| self.read.get(index(t)).copied().flatten().is_some_and(|v| v != value_of(t)));
        if changed {
            *self = Seen::default();
        }
        for t in trials {
            let at = index(t);
            if self.read.get(at).copied().flatten().is_some() {
                continue;
            }
            if self.read.len() <= at {
                self.read.resize(at + 1, None);
            }
            self.read[at] = Some(value_of(t));
            for ((name, log), column) in &mut self.columns {
                if let Some(v) = t.params.get(name) {
                    column.add(at, *v, *log);
                }
            }
        }
    }

    /// The column of `name` on the log scale or not, read from `trials` (all read already) when new.
    fn column(&mut self, name: &str, log: bool, trials: &[&FrozenTrial]) -> &Column {
        self.columns.entry((name.to_string(), log)).or_insert_with(|| {
            let mut column = Column::default();
            for t in trials {
                if let Some(v) = t.params.get(name) {
                    column.add(index(t), *v, log);
                }
            }
            column
        })
    }
}

impl TpeSampler {
    pub fn new(options: TpeOptions, seed: u32) -> Self {
        TpeSampler {
            options,
            rng: NumpyRandomState::new(seed),
            random: RandomSampler::new(seed),
            relative: None,
            relative_upto: 0,
            groups: Vec::new(),
            seen: Seen::default(),
        }
    }

    /// The sampler as it would be with nothing read yet but the same generator state (for tests of [`Seen`]).
    #[cfg(test)]
    pub(crate) fn forgetting(&self) -> TpeSampler {
        TpeSampler { seen: Seen::default(), ..self.clone() }
    }

    /// The groups of [`TpeOptions::group`] so far (for tests).
    #[cfg(test)]
    pub(crate) fn groups(&self) -> &[SearchSpace] {
        &self.groups
    }

    fn parzen_params(&self) -> ParzenParams {
        ParzenParams {
            prior_weight: self.options.prior_weight,
            consider_magic_clip: self.options.consider_magic_clip,
            consider_endpoints: self.options.consider_endpoints,
            multivariate: self.options.multivariate,
            weights: self.options.weights,
        }
    }

    /// The estimators `l` (good trials) and `g` (the rest) over `space`; running trials among `trials` go to `g`.
    pub fn estimators(
        &self,
        trials: &[&FrozenTrial],
        direction: Direction,
        space: &[(&str, &Distribution)],
    ) -> (ParzenEstimator, ParzenEstimator) {
        let n_finished = trials.iter().filter(|t| t.state != TrialState::Running).count();
        let (below, above) = split(trials, direction, (self.options.gamma)(n_finished));
        let dists: Vec<&Distribution> = space.iter().map(|(_, d)| *d).collect();
        let params = self.parzen_params();
        let fit = |group: &[&FrozenTrial]| {
            // one column per parameter, of the trials that have them all
            let mut columns: Vec<Vec<f64>> = vec![Vec::with_capacity(group.len()); space.len()];
            let mut n = 0;
            let mut row = vec![0.0; space.len()];
            for t in group {
                if space.iter().zip(&mut row).all(|((name, _), v)| t.params.get(*name).map(|x| *v = *x).is_some()) {
                    for (c, v) in columns.iter_mut().zip(&row) {
                        c.push(*v);
                    }
                    n += 1;
                }
            }
            ParzenEstimator::from_columns(&columns, n, &dists, &params)
        };
        (fit(&below), fit(&above))
    }

    /// [`TpeSampler::estimators`] from the kept observations ([`Seen`]).
    fn kept_estimators(
        &mut self,
        draw: &Draw<'_, '_>,
        space: &[(&str, &Distribution)],
    ) -> (ParzenEstimator, ParzenEstimator) {
        let trials = draw.trials;
        self.seen.refresh(trials);
        let dists: Vec<&Distribution> = space.iter().map(|(_, d)| *d).collect();
        let logs: Vec<bool> = dists
            .iter()
            .map(|d| matches!(d, Distribution::Float { log: true, .. } | Distribution::Int { log: true, .. }))
            .collect();
        for ((name, _), log) in space.iter().zip(&logs) {
            self.seen.column(name, *log, trials);
        }
        let params = self.parzen_params();
        let key = (draw.number, draw.history_len, trials.len(), draw.direction);
        if self.seen.split.as_ref().is_some_and(|s| s.key != key) {
            self.seen.split = None;
        }
        let gamma = self.options.gamma;
        let kept = &*self.seen.split.get_or_insert_with(|| {
            let (below, above) = split(trials, draw.direction, gamma(trials.len()));
            let numbers = |g: Vec<&FrozenTrial>| g.into_iter().map(index).collect();
            KeptSplit { key, below: numbers(below), above: numbers(above) }
        });
        let columns: Vec<&Column> =
            space.iter().zip(&logs).map(|((name, _), log)| &self.seen.columns[&(name.to_string(), *log)]).collect();
        // each group's trials that have every parameter, in number order; their places by number
        let mut place = Vec::new();
        let mut fit = |group: &[usize]| {
            let members: Vec<usize> =
                group.iter().copied().filter(|&k| columns.iter().all(|c| c.get(k).is_some())).collect();
            place.clear();
            place.resize(columns.first().map_or(0, |c| c.mu.len()), usize::MAX);
            for (i, &k) in members.iter().enumerate() {
                place[k] = i;
            }
            let dims = columns
                .iter()
                .zip(&dists)
                .map(|(c, d)| {
                    let values = members.iter().map(|&k| c.get(k).unwrap_or(f64::NAN)).collect();
                    if matches!(d, Distribution::Categorical { .. }) {
                        return Observed::Values(values);
                    }
                    // the multivariate bandwidth needs no order
                    let order = (!params.multivariate).then(|| {
                        c.sorted
                            .iter()
                            .filter_map(|&(_, k)| place.get(k).copied().filter(|&i| i != usize::MAX))
                            .collect()
                    });
                    Observed::Means { mus: values, order }
                })
                .collect();
            ParzenEstimator::from_observed(dims, members.len(), &dists, &params)
        };
        (fit(&kept.below), fit(&kept.above))
    }

    /// The running trials of `history` other than `trial`, when the constant liar is on.
    fn liars<'h>(&self, history: &'h [FrozenTrial], trial: &FrozenTrial) -> Vec<&'h FrozenTrial> {
        if !self.options.constant_liar {
            return Vec::new();
        }
        history.iter().filter(|t| t.state == TrialState::Running && t.number != trial.number).collect()
    }

    /// A joint TPE draw over `space`.
    fn sample(&mut self, draw: &Draw<'_, '_>, space: &[(&str, &Distribution)]) -> BTreeMap<String, f64> {
        let (below, above) = if !draw.running.is_empty() {
            // the constant liar: running trials change, so the history is read afresh (as Optuna does), each running
            // trial with the values its worker drew jointly (shared for this) beside the ones it was given
            let lied: Vec<FrozenTrial> = if self.options.multivariate {
                draw.running.iter().map(|t| with_relative_params(t, space)).collect()
            } else {
                draw.running.iter().map(|t| (*t).clone()).collect()
            };
            let all: Vec<&FrozenTrial> = draw.trials.iter().copied().chain(&lied).collect();
            self.estimators(&all, draw.direction, space)
        } else if draw.trials.iter().all(|t| t.number >= 0) {
            self.kept_estimators(draw, space)
        } else {
            // trial numbers are 0-based; a history that says otherwise is read afresh
            self.estimators(draw.trials, draw.direction, space)
        };
        let candidates = below.sample(&mut self.rng, self.options.n_ei_candidates);
        let best = best_candidate(&below.log_pdf(&candidates), &above.log_pdf(&candidates));
        space
            .iter()
            .zip(&candidates[best])
            .map(|((name, d), &v)| {
                (name.to_string(), if matches!(d, Distribution::Int { .. }) { v.trunc() } else { v })
            })
            .collect()
    }
}

/// A running trial as Optuna's TPE reads it with `constant_liar` (`_get_params`): its params, and for the names of
/// `space` it has not been given yet, the values of its shared relative draw (the system attribute
/// [`RELATIVE_PARAMS_KEY`]; a value the distribution cannot take is left out).
fn with_relative_params(trial: &FrozenTrial, space: &[(&str, &Distribution)]) -> FrozenTrial {
    let mut t = trial.clone();
    if let Some(serde_json::Value::Object(shared)) = trial.system_attrs.get(RELATIVE_PARAMS_KEY) {
        for (name, dist) in space {
            if t.params.contains_key(*name) {
                continue;
            }
            let value = shared.get(*name).and_then(|v| serde_json::from_value::<ParamValue>(v.clone()).ok());
            if let Some(x) = value.and_then(|v| dist.to_internal(&v).ok()) {
                t.params.insert(name.to_string(), x);
            }
        }
    }
    t
}

/// Optuna's `_SearchSpaceGroup.add_distributions`: each group splits into its part the trial has and the part it
/// has not (in that order), and the trial's parameters in no group so far make a new last group; empty parts are
/// dropped. A parameter keeps the distribution of the trial that brought it.
pub(crate) fn add_to_groups(groups: &mut Vec<SearchSpace>, distributions: &SearchSpace) {
    let mut rest: SearchSpace = distributions.clone();
    let mut next = Vec::with_capacity(groups.len() + 2);
    for group in groups.drain(..) {
        let (has, lacks): (SearchSpace, SearchSpace) =
            group.into_iter().partition(|(k, _)| distributions.contains_key(k));
        rest.retain(|k, _| !has.contains_key(k));
        next.push(has);
        next.push(lacks);
    }
    next.push(rest);
    next.retain(|g| !g.is_empty());
    *groups = next;
}

/// The index of the first largest `log l - log g` (numpy's `argmax`: a NaN wins).
pub fn best_candidate(log_l: &[f64], log_g: &[f64]) -> usize {
    let mut best = 0;
    let mut best_v = f64::NEG_INFINITY;
    for (i, (l, g)) in log_l.iter().zip(log_g).enumerate() {
        let v = l - g;
        if v.is_nan() {
            return i;
        }
        if i == 0 || v > best_v {
            best = i;
            best_v = v;
        }
    }
    best
}

/// The trials TPE learns from: complete and pruned ones.
fn finished(history: &[FrozenTrial]) -> Vec<&FrozenTrial> {
    history.iter().filter(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned)).collect()
}

/// Optuna's `_split_trials` for one objective without constraints: the best `n_below` complete trials, topped up
/// with the best pruned ones, against the rest and the running ones; each group in trial-number order.
pub fn split<'a>(
    trials: &[&'a FrozenTrial],
    direction: Direction,
    n_below: usize,
) -> (Vec<&'a FrozenTrial>, Vec<&'a FrozenTrial>) {
    let mut complete: Vec<&FrozenTrial> = trials.iter().copied().filter(|t| t.state == TrialState::Complete).collect();
    let mut pruned: Vec<&FrozenTrial> = trials.iter().copied().filter(|t| t.state == TrialState::Pruned).collect();
    let value = |t: &FrozenTrial| t.value.unwrap_or(f64::NAN);
    let by_value = |a: &&FrozenTrial, b: &&FrozenTrial| {
        let o = value(a).partial_cmp(&value(b)).unwrap_or(std::cmp::Ordering::Equal);
        if direction == Direction::Maximize { o.reverse() } else { o }
    };
    if n_below < complete.len() && complete.iter().all(|t| !value(t).is_nan()) {
        // only which trials come first matters (each group is put in number order below): the best `n_below` by
        // value, ties by their place in the list as a stable sort leaves them, are selected in linear time, and
        // the rest keep their order (the history's, most often already by number)
        let mut order: Vec<(usize, &FrozenTrial)> = complete.iter().copied().enumerate().collect();
        order.select_nth_unstable_by(n_below, |(i, a), (j, b)| by_value(a, b).then(i.cmp(j)));
        let mut best = vec![false; complete.len()];
        for &(i, _) in &order[..n_below] {
            best[i] = true;
        }
        let (mut good, mut rest) = (Vec::with_capacity(n_below), Vec::with_capacity(complete.len() - n_below));
        for (i, t) in complete.into_iter().enumerate() {
            if best[i] { good.push(t) } else { rest.push(t) }
        }
        good.append(&mut rest);
        complete = good;
    } else {
        complete.sort_by(by_value);
    }
    let score = |t: &FrozenTrial| -> (i64, f64) {
        match t.intermediate_values.iter().next_back() {
            None => (1, 0.0),
            Some((step, v)) if v.is_nan() => (-step, f64::INFINITY),
            Some((step, v)) => (-step, if direction == Direction::Minimize { *v } else { -v }),
        }
    };
    pruned.sort_by(|a, b| score(a).partial_cmp(&score(b)).unwrap_or(std::cmp::Ordering::Equal));
    let n_complete = n_below.min(complete.len());
    let n_pruned = (n_below - n_complete).min(pruned.len());
    let mut below: Vec<&FrozenTrial> = complete[..n_complete].iter().chain(&pruned[..n_pruned]).copied().collect();
    let running = trials.iter().copied().filter(|t| t.state == TrialState::Running);
    let mut above: Vec<&FrozenTrial> =
        complete[n_complete..].iter().chain(&pruned[n_pruned..]).copied().chain(running).collect();
    for group in [&mut below, &mut above] {
        if !group.is_sorted_by_key(|t| t.number) {
            group.sort_unstable_by_key(|t| t.number);
        }
    }
    (below, above)
}

impl Sampler for TpeSampler {
    fn shares_relative(&self) -> bool {
        self.options.constant_liar
    }

    fn infer_relative_space(&mut self, history: &[FrozenTrial], _trial: &FrozenTrial) -> SearchSpace {
        if !self.options.multivariate {
            return SearchSpace::new();
        }
        // the parameters every complete or pruned trial has, with the same distribution: the remembered
        // intersection, narrowed by the trials not read before (a trial read twice narrows nothing)
        let mut upto = i64::MAX;
        let mut last = -1;
        for t in history {
            last = last.max(t.number);
            if !t.state.is_finished() {
                upto = upto.min(t.number);
            }
            if t.number < self.relative_upto || !matches!(t.state, TrialState::Complete | TrialState::Pruned) {
                continue;
            }
            if self.options.group {
                add_to_groups(&mut self.groups, &t.distributions);
                continue;
            }
            match &mut self.relative {
                None => self.relative = Some(t.distributions.clone()),
                Some(space) => space.retain(|k, d| t.distributions.get(k) == Some(d)),
            }
        }
        self.relative_upto = if upto == i64::MAX { last + 1 } else { upto };
        if self.options.group {
            let union = self.groups.iter().flatten().filter(|(_, d)| !d.single());
            return union.map(|(k, d)| (k.clone(), d.clone())).collect();
        }
        let mut space = self.relative.clone().unwrap_or_default();
        space.retain(|_, d| !d.single());
        space
    }

    fn sample_relative(
        &mut self,
        history: &[FrozenTrial],
        direction: Direction,
        trial: &FrozenTrial,
        space: &SearchSpace,
    ) -> BTreeMap<String, f64> {
        let trials = finished(history);
        if space.is_empty() || trials.len() < self.options.n_startup_trials {
            return BTreeMap::new();
        }
        let running = self.liars(history, trial);
        let draw =
            Draw { trials: &trials, running: &running, history_len: history.len(), number: trial.number, direction };
        if !self.options.group {
            let space: Vec<(&str, &Distribution)> = space.iter().map(|(k, d)| (k.as_str(), d)).collect();
            return self.sample(&draw, &space);
        }
        // one joint draw per group, in the groups' order, each over its parameters by name (as Optuna sorts them)
        let mut params = BTreeMap::new();
        for group in self.groups.clone() {
            let sub: Vec<(&str, &Distribution)> = group
                .iter()
                .filter(|(k, d)| !d.single() && space.contains_key(*k))
                .map(|(k, d)| (k.as_str(), d))
                .collect();
            if !sub.is_empty() {
                params.extend(self.sample(&draw, &sub));
            }
        }
        params
    }

    fn sample_independent(
        &mut self,
        history: &[FrozenTrial],
        direction: Direction,
        trial: &FrozenTrial,
        name: &str,
        dist: &Distribution,
    ) -> Result<f64, TuneError> {
        let trials = finished(history);
        if trials.len() < self.options.n_startup_trials {
            return Ok(self.random.draw(dist));
        }
        let running = self.liars(history, trial);
        let draw =
            Draw { trials: &trials, running: &running, history_len: history.len(), number: trial.number, direction };
        Ok(self.sample(&draw, &[(name, dist)])[name])
    }
}
