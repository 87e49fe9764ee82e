//! A small seeded random number generator (SplitMix64): the simulator's only source of chance,
//! so one seed always replays the same run.

use std::cell::Cell;

use ferry::core::Env;

/// SplitMix64. Not cryptographic; fast, tiny and fully determined by its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The engine's environment in the simulator: one shared clock, seeded randomness.
pub struct SimEnv {
    pub clock: std::rc::Rc<Cell<f64>>,
    state: Cell<u64>,
}

impl SimEnv {
    pub fn new(clock: std::rc::Rc<Cell<f64>>, seed: u64) -> SimEnv {
        SimEnv {
            clock,
            state: Cell::new(seed),
        }
    }
}

impl Env for SimEnv {
    fn now_ms(&self) -> f64 {
        self.clock.get()
    }
    fn random_u32(&self) -> u32 {
        let mut r = Rng(self.state.get());
        let v = r.next_u64();
        self.state.set(r.0);
        (v >> 32) as u32
    }
}
