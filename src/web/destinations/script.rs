//! The `script` destination type: injects a fixed list of scripts once its consent allows
//! (`settings: { scripts: [descriptor, ...] }`), and maps no events. Its `requiredConsent`
//! comes from the config entry (default: only `necessary`).

use std::cell::Cell;
use std::rc::Rc;

use crate::script::ScriptDescriptor;
use crate::web::config::DestConfig;
use crate::web::dest::{Destination, Done, Event, LoadEnv};
use crate::web::inject::{parse_descriptor, remove_all, remove_revoked, Injecting};
use crate::web::js::{check_keys, get, index, list};

/// A destination that only injects scripts.
pub struct ScriptDestination {
    /// The owner of its scripts ([`crate::web::dest::CreateEnv::owner`]).
    id: Rc<str>,
    scripts: Rc<Vec<ScriptDescriptor>>,
    /// Bumped by `revoke` and `destroy`: a load started before stops injecting.
    generation: Rc<Cell<u32>>,
}

/// Creates the destination for `entry`, validating `settings.scripts`; errors name the field
/// (`config.destinations[0].settings.scripts[1].src`).
pub fn create(entry: &DestConfig, owner: Rc<str>) -> Result<Rc<dyn Destination>, String> {
    let path = entry.settings_path();
    check_keys(&entry.settings, &["scripts"], &path)?;
    let at = [&path, ".scripts"].concat();
    let arr = list(
        &get(&entry.settings, "scripts"),
        &at,
        " is required (an array of script descriptors)",
    )?;
    let mut scripts: Vec<ScriptDescriptor> = Vec::new();
    for j in 0..arr.length() {
        let v = arr.get(j);
        let p = index(&at, j);
        let d = parse_descriptor(&v, &p, false)?;
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
