//! The `relay` destination type (not implemented yet).

use std::rc::Rc;

use crate::web::config::DestConfig;
use crate::web::dest::Destination;

/// Creates the destination for `entry`.
pub fn create(entry: &DestConfig, _prefix: &str) -> Result<Rc<dyn Destination>, String> {
    Err([
        &entry.path,
        ": destination type '",
        &entry.kind,
        "' is not available yet",
    ]
    .concat())
}
