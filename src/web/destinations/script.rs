//! The `script` destination type: injects a fixed list of scripts once its consent allows
//! (`settings: { scripts: [descriptor, ...] }`), and maps no events. Its `requiredConsent`
//! comes from the config entry (default: only `necessary`).

use std::cell::Cell;
use std::rc::Rc;

use crate::script::ScriptDescriptor;
use crate::web::config::de::from_value;
use crate::web::config::DestConfig;
use crate::web::dest::{Destination, Done, Event, LoadEnv};
use crate::web::inject::{remove_all, remove_revoked, Descriptor, Injecting};

/// A destination that only injects scripts.
pub struct ScriptDestination {
    /// The owner of its scripts ([`crate::web::dest::CreateEnv::owner`]).
    id: Rc<str>,
    scripts: Rc<Vec<ScriptDescriptor>>,
    /// Bumped by `revoke` and `destroy`: a load started before stops injecting.
    generation: Rc<Cell<u32>>,
}

/// A `script` destination's `settings`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
struct Settings {
    scripts: Option<Vec<Descriptor>>,
}

/// Creates the destination for `entry`, validating `settings.scripts`; errors name the field
/// (`config.destinations[0].settings.scripts[1].src`).
pub fn create(entry: &DestConfig, owner: Rc<str>) -> Result<Rc<dyn Destination>, String> {
    let path = entry.settings_path();
    let at = [&path, ".scripts"].concat();
    let Some(list) = from_value::<Settings>(&entry.settings, &path)?.scripts else {
        return Err([&at, " is required (an array of script descriptors)"].concat());
    };
    let mut scripts: Vec<ScriptDescriptor> = Vec::new();
    for (j, d) in list.into_iter().enumerate() {
        let p = [&at, "[", &j.to_string(), "]"].concat();
        let d = d.check(&p, false)?;
        for s in &scripts {
            if s.id == d.id {
                return Err([&p, ".id duplicates another script: ", &d.id].concat());
            }
        }
        scripts.push(d);
    }
    Ok(Rc::new(ScriptDestination {
        id: owner,
        scripts: Rc::new(scripts),
        generation: Rc::default(),
    }))
}

impl Destination for ScriptDestination {
    fn load(self: Rc<Self>, env: LoadEnv, done: Done) {
        Injecting {
            list: self.scripts.clone(),
            next: 0,
            owner: self.id.clone(),
            nonce: env.nonce,
            timeout_ms: env.timeout_ms,
            generation: self.generation.clone(),
            started: self.generation.get(),
            done,
        }
        .run();
    }

    fn deliver(self: Rc<Self>, _events: Vec<Event>, done: Done) {
        done(Ok(()))
    }

    fn revoke(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        remove_revoked(&self.id, &self.scripts);
    }

    fn destroy(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        remove_all(&self.id, &self.scripts);
    }
}
