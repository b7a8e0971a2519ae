//! bfgg-tui: the cockpit (`bfgg tui`).
//!
//! * [`msg`]: [`Msg`](msg::Msg) in (keys, network events, ticks, effect
//!   outcomes), [`Effect`](msg::Effect) out (start, subscribe, stop, save
//!   results, load, delete, read the store, quit), each carrying its targets.
//! * [`app`]: [`App`](app::App), all state, and `App::update`: pure, no clock,
//!   no I/O, tested as messages in and effects out.
//! * [`ui`]: `render(&App, &mut Frame)`, a pure function of the state, tested
//!   with `TestBackend` snapshots.
//! * [`runtime`]: the only impure part: the terminal, the light peer on the
//!   mesh, the `select!` loop, performing effects, redraw throttling. It
//!   keeps no state of the cockpit's.

pub mod app;
pub mod msg;
pub mod runtime;
pub mod ui;

#[cfg(test)]
mod fixtures;
