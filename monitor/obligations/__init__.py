"""The obligation core: events plus a clock in, figures and alert transitions out.

Plain Python only: no Kafka, no database, no asyncio, no wall clock. Every rule of
OBLIGATIONS.md lives here once; the stream worker and `monitor evaluate` both feed it.
"""
