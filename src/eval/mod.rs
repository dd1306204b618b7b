//! Model-free evaluation building blocks for issue 3: oscillation statistics over evaluations
//! (with issue 17's absolute swing, flip rates and bootstrap intervals),
//! degeneration metrics and the butterfly horizon over token sequences, and the validity checker
//! for the synthetic corpus. Nothing here knows about models, tensors or run directories.

pub mod bootstrap;
pub mod flips;
pub mod oscillation;
pub mod story_check;
pub mod swing;
pub mod text_metrics;
