"""The workflows' contract types: the dataclasses a workflow passes to its activities and gets
back, and the workflow's own input, signals and queries.

They sit below both sides of the contract: `workflows/` and `activities/` import them, and
so do their clients (the API, the relay's risk consumer). They travel through Temporal's
history as JSON of their fields: the type and field names are what recorded histories hold,
so neither may change (tests/workflows/test_replay.py). Plain values only, and nothing from
the ledger but its state enums.

- `contracts.transfer`: the transfer workflow and activities;
- `contracts.standing_order`: a standing order's run;
- `contracts.health`: the health check's database ping.
"""
