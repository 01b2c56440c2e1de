//! State shared by the server tasks and the [`crate::Simulator`] handle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::faults::{FaultAction, Kind};
use crate::state::Directory;
use crate::throttle::SlidingWindow;
use crate::types::{CallCounts, Fault, SimulatorConfig};

#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    pub expires: Instant,
    pub audience: String,
    /// Whose token it is, with the permissions it carries.
    pub caller: crate::permissions::Caller,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub addr: SocketAddr,
    pub tenant_id: String,
    pub p1_license: bool,
    latency_us: AtomicU64,
    pub dir: Mutex<Directory>,
    faults: Mutex<Vec<Fault>>,
    calls: Mutex<CallCounts>,
    invite_throttle: Mutex<Option<SlidingWindow>>,
    write_throttle: Mutex<Option<SlidingWindow>>,
    pub tokens: Mutex<HashMap<String, TokenInfo>>,
    /// The OpenID Connect side: keys, tenants and users who sign in, codes.
    pub sign_in: Mutex<crate::sign_in::SignInState>,
}

/// Locks a mutex, ignoring poisoning: a panicking test thread must not make
/// every later call on a shared simulator panic too.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(addr: SocketAddr, config: SimulatorConfig) -> Self {
        Shared {
            addr,
            tenant_id: config.tenant_id,
            p1_license: config.p1_license,
            latency_us: AtomicU64::new(config.latency.as_micros() as u64),
            dir: Mutex::new({
                let mut dir = Directory::default();
                dir.seed_tenant(&config.app_permissions);
                dir
            }),
            faults: Mutex::new(Vec::new()),
            calls: Mutex::new(CallCounts::default()),
            invite_throttle: Mutex::new(
                config
                    .invitation_throttle
                    .map(|(n, w)| SlidingWindow::new(n, w)),
            ),
            write_throttle: Mutex::new(
                config.write_throttle.map(|(n, w)| SlidingWindow::new(n, w)),
            ),
            tokens: Mutex::new(HashMap::new()),
            sign_in: Mutex::new(crate::sign_in::SignInState::default()),
        }
    }

    pub fn dir(&self) -> MutexGuard<'_, Directory> {
        lock(&self.dir)
    }

    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    pub fn set_latency(&self, d: Duration) {
        self.latency_us
            .store(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn count(&self, f: impl FnOnce(&mut CallCounts)) {
        f(&mut lock(&self.calls));
    }

    pub fn calls(&self) -> CallCounts {
        lock(&self.calls).clone()
    }

    pub fn reset_calls(&self) {
        *lock(&self.calls) = CallCounts::default();
    }

    pub fn count_kind(&self, kind: Kind, in_batch: bool) {
        self.count(|c| {
            if in_batch {
                c.batch_subrequests += 1;
            }
            match kind {
                Kind::Token => c.token += 1,
                Kind::Invitations => c.invitations += 1,
                Kind::ListUsers => {
                    c.list_users_pages += 1;
                    if in_batch {
                        c.list_users_in_batch += 1;
                    }
                }
                Kind::GetUser => c.get_user += 1,
                Kind::PatchUser => c.patch_user += 1,
                Kind::DeleteUser => c.delete_user += 1,
                Kind::AddMember => c.add_member += 1,
                Kind::AppRole => c.app_role += 1,
                Kind::Batch => c.batch += 1,
                Kind::Other => c.other += 1,
            }
        });
    }

    pub fn inject_fault(&self, f: Fault) {
        if f.times > 0 {
            lock(&self.faults).push(f);
        }
    }

    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    pub fn faults(&self) -> Vec<Fault> {
        lock(&self.faults).clone()
    }

    /// Consumes one use of the first fault that matches `kind`, oldest first.
    pub fn take_fault(&self, kind: Kind) -> Option<FaultAction> {
        let mut faults = lock(&self.faults);
        let idx = faults.iter().position(|f| kind.matches(f.route))?;
        let f = &mut faults[idx];
        f.times -= 1;
        let action = FaultAction::from(&*f);
        if f.times == 0 {
            faults.remove(idx);
        }
        Some(action)
    }

    pub fn admit_invitation(&self) -> Result<(), u32> {
        match lock(&self.invite_throttle).as_mut() {
            Some(w) => w.try_acquire(Instant::now()),
            None => Ok(()),
        }
    }

    pub fn admit_write(&self) -> Result<(), u32> {
        match lock(&self.write_throttle).as_mut() {
            Some(w) => w.try_acquire(Instant::now()),
            None => Ok(()),
        }
    }
}
