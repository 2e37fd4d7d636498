//! Leader election with a `coordination.k8s.io/v1` Lease, the way
//! client-go's leaderelection does it: the leader renews the Lease every
//! `retry` period; the others take it over once they have seen it unchanged
//! for the lease duration (by their own clock, so skew between machines does
//! not matter); a leader that cannot renew within the renew deadline steps
//! down at once. Every write carries the resourceVersion it read, so two
//! candidates never both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::{oneshot, watch};

use super::connect::Cluster;
use super::error::ClusterError;

/// Which Lease, who we are, and the timings.
#[derive(Debug, Clone)]
pub struct Election {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (the pod's name).
    pub identity: String,
    /// How long a Lease unrenewed stays the holder's.
    pub duration: Duration,
}

impl Election {
    /// How often the leader renews and the others look.
    fn retry(&self) -> Duration {
        (self.duration / 5).max(Duration::from_millis(200))
    }

    /// How long the leader keeps leading without a successful renewal.
    fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

/// What this replica saw of the Lease last, and when (by its own clock).
struct Observed {
    holder: Option<String>,
    renewed: Option<MicroTime>,
    at: Instant,
}

/// Runs the election until `stop` resolves; `leading` says whether this
/// replica leads. Only one replica's `leading` is ever `true` at a time
/// (give or take the renew deadline of a leader cut off from the server).
pub async fn run(cluster: Cluster, election: Election, leading: watch::Sender<bool>, stop: impl Future<Output = ()>) {
    let api: Api<Lease> = Api::namespaced(cluster.client().clone(), &election.namespace);
    let mut observed: Option<Observed> = None;
    let mut last_renewal: Option<Instant> = None;
    tokio::pin!(stop);
    loop {
        // A round may take no longer than the leader may go without a
        // renewal: a hung request must not keep a stale leader leading.
        let started = Instant::now();
        let budget = match (*leading.borrow(), last_renewal) {
            (true, Some(at)) => election.renew_deadline().saturating_sub(at.elapsed()),
            _ => election.renew_deadline(),
        };
        let round = tokio::select! {
            round = tokio::time::timeout(budget, attempt(&api, &election, &mut observed)) => round,
            () = &mut stop => break,
        };
        let round = round.unwrap_or_else(|_| {
            Err(ClusterError::Object(format!("the lease {} did not answer within {budget:?}", election.name)))
        });
        match round {
            Ok(true) => {
                last_renewal = Some(started);
                if !*leading.borrow() {
                    tracing::info!(lease = %election.name, identity = %election.identity, "became the leader");
                    let _ = leading.send(true);
                }
            }
            Ok(false) => {
                if *leading.borrow() {
                    tracing::warn!(lease = %election.name, "another replica holds the lease; stepping down");
                    let _ = leading.send(false);
                }
                last_renewal = None;
            }
            Err(error) => {
                tracing::warn!(lease = %election.name, %error, "cannot read or renew the lease");
                let lapsed = last_renewal.is_none_or(|at| at.elapsed() > election.renew_deadline());
                if *leading.borrow() && lapsed {
                    tracing::warn!(lease = %election.name, "could not renew the lease in time; stepping down");
                    let _ = leading.send(false);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(election.retry()) => {}
            () = &mut stop => break,
        }
    }
    if *leading.borrow() {
        let _ = leading.send(false);
        release(&api, &election).await;
    }
}

/// One round: `Ok(true)` when we hold the Lease afterwards.
async fn attempt(api: &Api<Lease>, election: &Election, observed: &mut Option<Observed>) -> Result<bool, ClusterError> {
    let what = || format!("the lease {}/{}", election.namespace, election.name);
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let Some(mut lease) = api.get_opt(&election.name).await.map_err(|e| ClusterError::from_kube(what(), e))? else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(election.name.clone()), ..ObjectMeta::default() },
            spec: Some(spec(election, now.clone(), now, 0)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(ClusterError::from_kube(what(), e)),
        };
    };
    let current = lease.spec.clone().unwrap_or_default();
    let holder = current.holder_identity.clone().filter(|h| !h.is_empty());
    let changed = observed.as_ref().is_none_or(|o| o.holder != holder || o.renewed != current.renew_time);
    if changed {
        *observed = Some(Observed { holder: holder.clone(), renewed: current.renew_time.clone(), at: Instant::now() });
    }
    let ours = holder.as_deref() == Some(election.identity.as_str());
    let duration = current.lease_duration_seconds.map_or(election.duration, |s| Duration::from_secs(s.max(1) as u64));
    let expired = observed.as_ref().is_some_and(|o| o.at.elapsed() > duration);
    if !ours && holder.is_some() && !expired {
        return Ok(false);
    }
    let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!ours);
    let acquired = if ours { current.acquire_time.clone().unwrap_or(now.clone()) } else { now.clone() };
    lease.spec = Some(spec(election, acquired, now, transitions));
    match api.replace(&election.name, &PostParams::default(), &lease).await {
        Ok(written) => {
            let spec = written.spec.unwrap_or_default();
            *observed = Some(Observed { holder: spec.holder_identity, renewed: spec.renew_time, at: Instant::now() });
            Ok(true)
        }
        // Someone else wrote it since we read it: theirs, for now; if it was
        // ours, keep leading until the renew deadline says otherwise.
        Err(kube::Error::Api(status)) if status.code == 409 && !ours => Ok(false),
        Err(e) => Err(ClusterError::from_kube(what(), e)),
    }
}

fn spec(election: &Election, acquired: MicroTime, renewed: MicroTime, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(election.identity.clone()),
        lease_duration_seconds: Some(seconds(election.duration)),
        acquire_time: Some(acquired),
        renew_time: Some(renewed),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

/// A duration in whole seconds, rounded up: the others never take over
/// before the leader's own deadline.
fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs() + u64::from(duration.subsec_nanos() > 0)).unwrap_or(i32::MAX).max(1)
}

/// Gives the Lease up on a clean stop, so the next leader need not wait.
async fn release(api: &Api<Lease>, election: &Election) {
    let Ok(Some(mut lease)) = api.get_opt(&election.name).await else { return };
    let Some(spec) = lease.spec.as_mut() else { return };
    if spec.holder_identity.as_deref() != Some(election.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    if let Err(error) = api.replace(&election.name, &PostParams::default(), &lease).await {
        tracing::warn!(%error, "could not release the lease");
    }
}

/// A running election.
pub struct Leader {
    /// `true` while this replica leads.
    pub leading: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Leader {
    /// Starts campaigning for `election`'s Lease.
    pub fn start(cluster: &Cluster, election: Election) -> Leader {
        let (sender, leading) = watch::channel(false);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(cluster.clone(), election, sender, async move {
            let _ = stopped.await;
        }));
        Leader { leading, stop: Some(stop), task }
    }

    /// Stops campaigning and gives the Lease up if we hold it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }
}

/// Resolves once `leading` is `true` (never, if the election is gone).
pub async fn until_leading(leading: &mut watch::Receiver<bool>) {
    if leading.wait_for(|leads| *leads).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves once `leading` turns `false` (at once, if the election is gone).
pub async fn until_not_leading(leading: &mut watch::Receiver<bool>) {
    let _ = leading.wait_for(|leads| !*leads).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_durations_round_up_and_rounds_fit_the_deadline() {
        assert_eq!(seconds(Duration::from_millis(2900)), 3);
        assert_eq!(seconds(Duration::from_secs(2)), 2);
        assert_eq!(seconds(Duration::from_millis(300)), 1);
        let election = Election {
            namespace: "ns".into(),
            name: "l".into(),
            identity: "me".into(),
            duration: Duration::from_secs(15),
        };
        assert_eq!(election.retry(), Duration::from_secs(3));
        assert_eq!(election.renew_deadline(), Duration::from_secs(10));
    }
}
