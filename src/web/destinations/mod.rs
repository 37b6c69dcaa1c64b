//! The built-in destination types: the server relay and the vendor tags.

use std::rc::Rc;

use super::config::DestConfig;
use super::dest::{CreateEnv, Destination};

pub mod relay;
pub mod script;
pub mod vendors;

/// Creates a built-in destination for `entry`, `Ok(None)` when its type is not built in.
/// Settings are validated here; errors name the entry (`config.destinations[0].settings.x`).
pub fn create(entry: &DestConfig, env: &CreateEnv) -> Result<Option<Rc<dyn Destination>>, String> {
    Ok(Some(match entry.kind.as_str() {
        "relay" => relay::create(entry, env)?,
        "script" => script::create(entry, env.owner(&entry.id))?,
        k => match crate::vendor_map::Vendor::from_kind(k) {
            Some(v) => vendors::create(entry, v, env.owner(&entry.id))?,
            None => return Ok(None),
        },
    }))
}
