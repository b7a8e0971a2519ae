//! One iteration's state and template rendering: variables, picked data-pool
//! rows, builtins and the per-user random number generator.
//!
//! An [`IterationContext`] lives as long as its virtual user (or open-model
//! slot) and is reused across iterations, so once warm an iteration allocates
//! nothing here but the extracted values themselves. [`Pools`] is per worker and
//! shared by that worker's contexts; it never touches another worker's cursors.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use bfgg_protocol::ErrorKind;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::scenario::data::{OnExhausted, PoolCursor, PoolSpec, Strategy};
use crate::scenario::template::{Builtin, Segment, Template, VarRef};

/// One worker's cursors over the scenario's data pools.
#[derive(Debug, Clone)]
pub struct Pools {
    /// Indexed like `Scenario::pools`.
    cursors: Vec<PoolCursor>,
    /// Pool name → index into `cursors`.
    by_name: HashMap<String, usize>,
    /// The first Stop-on-exhausted unique pool that ran out, by index.
    exhausted: Option<usize>,
}

impl Pools {
    /// Cursors for worker `worker_index` of `worker_count` (0 is treated as 1).
    ///
    /// Unique pools are partitioned so rows stay unique across workers;
    /// circular and random pools use every row, circular ones starting at row
    /// `worker_index * len / worker_count` so workers spread over the file.
    pub fn new(specs: &[PoolSpec], worker_index: usize, worker_count: usize) -> Pools {
        let count = worker_count.max(1);
        let index = worker_index.min(count - 1);
        let cursors = specs
            .iter()
            .map(|spec| match spec.strategy {
                Strategy::Unique => PoolCursor::new(spec.partition(index, count), 0),
                Strategy::Circular => {
                    let start = ((index as u128 * spec.len() as u128) / count as u128) as usize;
                    PoolCursor::new(spec.clone(), start)
                }
                Strategy::Random => PoolCursor::new(spec.clone(), 0),
            })
            .collect();
        let mut by_name = HashMap::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            // The loader rejects duplicate names; if one slips through, the
            // first pool wins, as in declaration order.
            by_name.entry(spec.name.clone()).or_insert(i);
        }
        Pools {
            cursors,
            by_name,
            exhausted: None,
        }
    }

    /// The name of a Stop-on-exhausted unique pool that ran out (an iteration
    /// needed a row and none was left), if any: the engine stops the run.
    pub fn exhausted(&self) -> Option<&str> {
        self.exhausted.map(|i| self.cursors[i].spec().name.as_str())
    }

    /// Index of the pool called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Every cursor, indexed like `Scenario::pools` (for "exhausted after N
    /// rows" and progress reports).
    pub fn cursors(&self) -> &[PoolCursor] {
        &self.cursors
    }

    /// Number of pools.
    pub fn len(&self) -> usize {
        self.cursors.len()
    }

    /// True when the scenario has no data pools.
    pub fn is_empty(&self) -> bool {
        self.cursors.is_empty()
    }
}

/// Per virtual user (closed model) or per in-flight slot (open model); reused
/// across iterations (no allocation per iteration once warm).
#[derive(Debug, Clone)]
pub struct IterationContext {
    /// Variables by name. Entries are kept across iterations and emptied by
    /// [`IterationContext::begin`], so a warm context reuses its keys.
    vars: HashMap<String, Option<String>>,
    /// This iteration's row per pool (pool index → row index), picked on
    /// first use.
    rows: Vec<Option<usize>>,
    iteration: u64,
    user: u64,
    rng: SmallRng,
}

impl IterationContext {
    /// A context for user (or slot) `user`, its randomness seeded by `seed`.
    pub fn new(user: u64, seed: u64) -> Self {
        IterationContext {
            vars: HashMap::new(),
            rows: Vec::new(),
            iteration: 0,
            user,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Starts iteration `iteration`: forgets every variable and picked row.
    pub fn begin(&mut self, iteration: u64) {
        self.iteration = iteration;
        for value in self.vars.values_mut() {
            *value = None;
        }
        self.rows.fill(None);
    }

    /// Sets variable `name` for the rest of this iteration.
    pub fn set_var(&mut self, name: &str, value: String) {
        match self.vars.get_mut(name) {
            Some(slot) => *slot = Some(value),
            None => {
                self.vars.insert(name.to_owned(), Some(value));
            }
        }
    }

    /// Variable `name`, if set in this iteration.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name)?.as_deref()
    }

    /// The current iteration number.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// The user (or slot) number.
    pub fn user(&self) -> u64 {
        self.user
    }

    /// This user's generator; the engine draws think times and journey choice
    /// from it.
    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }

    /// The row of pool `pool` (an index into `Scenario::pools`) for this
    /// iteration, picking it on first use.
    ///
    /// Fails with `ErrorKind::DataExhausted(pool name)` when the pool has no
    /// row left; for a Stop-on-exhausted unique pool [`Pools::exhausted`] then
    /// names it, and the engine should stop rather than count the error. An
    /// out-of-range `pool` fails with `ErrorKind::Extract`.
    pub fn row(&mut self, pool: usize, pools: &mut Pools) -> Result<usize, ErrorKind> {
        if self.rows.len() < pools.cursors.len() {
            self.rows.resize(pools.cursors.len(), None);
        }
        let (Some(picked), Some(cursor)) = (self.rows.get_mut(pool), pools.cursors.get_mut(pool))
        else {
            return Err(ErrorKind::Extract(format!("no data pool number {pool}")));
        };
        if let Some(row) = *picked {
            return Ok(row);
        }
        match cursor.next_row(&mut self.rng) {
            Some(row) => {
                *picked = Some(row);
                Ok(row)
            }
            None => {
                let spec = cursor.spec();
                if spec.strategy == Strategy::Unique
                    && spec.on_exhausted == OnExhausted::Stop
                    && pools.exhausted.is_none()
                {
                    pools.exhausted = Some(pool);
                }
                Err(ErrorKind::DataExhausted(spec.name.clone()))
            }
        }
    }

    /// Appends the rendered template to `out`. A pool row is picked on first
    /// use of that pool in the iteration and reused for the rest of it.
    ///
    /// Errors: `ErrorKind::Extract("no value for {{token}}")` for an unset
    /// variable; `ErrorKind::DataExhausted(pool)` when a pool ran out (see
    /// [`IterationContext::row`]). A literal template is a single `push_str`. On error `out` may hold part
    /// of the rendering; the caller drops the request. A pool or column the
    /// pools don't have (the loader rejects those) also fails with
    /// "no value for {{pool.column}}".
    pub fn render(
        &mut self,
        t: &Template,
        pools: &mut Pools,
        out: &mut String,
    ) -> Result<(), ErrorKind> {
        if let Some(text) = t.as_literal() {
            out.push_str(text);
            return Ok(());
        }
        for segment in t.segments() {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Ref(var) => self.render_ref(var, pools, out)?,
            }
        }
        Ok(())
    }

    /// Appends one placeholder's value to `out`.
    fn render_ref(
        &mut self,
        var: &VarRef,
        pools: &mut Pools,
        out: &mut String,
    ) -> Result<(), ErrorKind> {
        match var {
            VarRef::Var(name) => match self.var(name) {
                Some(value) => out.push_str(value),
                None => return Err(no_value(var)),
            },
            VarRef::Pool { pool, column } => {
                let Some(index) = pools.index_of(pool) else {
                    return Err(no_value(var));
                };
                let row = self.row(index, pools)?;
                let spec = pools.cursors[index].spec();
                let value = spec
                    .column(column)
                    .and_then(|col| spec.value(row, col))
                    .ok_or_else(|| no_value(var))?;
                out.push_str(value);
            }
            VarRef::Builtin(builtin) => match *builtin {
                Builtin::Uuid => push_uuid(&mut self.rng, out),
                Builtin::RandInt(lo, hi) => {
                    let n = self.rng.random_range(lo..=hi);
                    let _ = write!(out, "{n}");
                }
                Builtin::Iteration => {
                    let _ = write!(out, "{}", self.iteration);
                }
                Builtin::TimestampMs => {
                    let ms = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis());
                    let _ = write!(out, "{ms}");
                }
                Builtin::User => {
                    let _ = write!(out, "{}", self.user);
                }
            },
        }
        Ok(())
    }
}

/// The error for a placeholder without a value.
fn no_value(var: &VarRef) -> ErrorKind {
    ErrorKind::Extract(format!("no value for {{{{{var}}}}}"))
}

/// Appends a random v4 UUID, lowercase and hyphenated (8-4-4-4-12).
fn push_uuid<R: Rng + ?Sized>(rng: &mut R, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes: [u8; 16] = rng.random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // variant 10xx (RFC 4122)
    out.reserve(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

#[cfg(test)]
mod tests;
