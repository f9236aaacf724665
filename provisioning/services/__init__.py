"""Provisioning's writes, one module per concern (STYLE.md's `services`, as a package). The only writer of
ManagedObject. Import from the module that owns a name; this package re-exports nothing.

- `plan`: what a request renders to, the plan, the database password read back from its Secret
- `claims`: the worker's claim on a request
- `apply`: record-then-apply of a claimed request's objects, ownership checks
- `readiness`: what is not ready yet, and activation
- `provision`: the orchestrator, `request_provision`
- `retries`: the retry policy, failing a request
- `sweep`: enqueueing, and the sweep of stuck requests
- `progress`: the progress read model
- `teardown`: teardown plan, run and record
- `reconcile`: drift repair
- `releases`: app releases, day-2 upgrades and rollbacks

Order (each imports only those after it): provision > readiness > releases; provision > retries >
teardown; reconcile > teardown; sweep > claims > apply > plan; progress > plan.
"""
