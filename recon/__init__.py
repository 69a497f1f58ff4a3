"""Reconciliation, reversals, statements and the audit check: proving after the fact what moved.

    errors        typed errors (each with the API's problem `code`)
    io            inputs and results of the reconciliation workflow and its activities
    checks        the checks themselves (SQL over the ledger, the outbox and the consumers)
    runs          reconciliation_runs / reconciliation_checks storage
    alerts        the `reconciliation.failed` event a failed run writes to the outbox (ledgerflow.ops)
    schedule      the Temporal Schedule that runs reconciliation daily (ensure_schedule)
    reversals     maker-checker reversal of posted transfers
    statements    bank / processor statement import and matching
    export        account statement CSV for a period (point in time)
    audit_cli     `ledgerflow audit verify`

Imports the ledger; nothing here imports a workflow or the API.
"""
