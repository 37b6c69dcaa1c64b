//! The built-in destination types (relay and the vendor tags).

use std::rc::Rc;

use super::config::DestConfig;
use super::dest::Destination;

/// Creates a built-in destination for `entry`, `Ok(None)` when its type is not built in.
pub fn create(entry: &DestConfig, prefix: &str) -> Result<Option<Rc<dyn Destination>>, String> {
    let _ = (entry, prefix);
    Ok(None)
}
