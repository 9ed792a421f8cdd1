//! Why a run over an input ended badly, for `mta attribute` and for every worker stage:
//! the input or options are wrong (the user's to fix), the run was told to stop, or
//! anything else failed (storage, Redis, the disk: ours, and worth a retry in the service).

use mta_core::AttributionError;

#[derive(Debug)]
pub enum RunError {
    /// The input or options are wrong: the job fails at once with this error.
    Input(AttributionError),
    /// The job was cancelled (or this copy of the task was abandoned): stop quietly.
    Stopped,
    /// Anything else: retried by the service until the start budget runs out.
    Other(anyhow::Error),
}

impl From<AttributionError> for RunError {
    fn from(e: AttributionError) -> Self {
        RunError::Input(e)
    }
}

impl From<anyhow::Error> for RunError {
    fn from(e: anyhow::Error) -> Self {
        RunError::Other(e)
    }
}
