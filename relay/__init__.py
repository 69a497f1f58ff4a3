"""Outbox -> Kafka relay and the event consumers (`python -m relay`, see relay.process).

publisher     OutboxRelay: read a page, produce it, move the cursor; the pipelined loop; one leader
producer      the idempotent producer and per-batch delivery reports
outbox_store  the relay's SQL on the outbox; parked_rows / requeue_parked for operators
topics        topic specs and their creation at start-up
consumer      EventConsumer: a consumer group applying events once (processed_events)
dead_letters  events a consumer could not apply: parked with their error; list, replay, dismiss
notifier      notification.requested -> Channel (in-app inbox today)
activity      transfer and account events -> activity_feed and event_counts
"""
