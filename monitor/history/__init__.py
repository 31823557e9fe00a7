"""The history store and the sink that fills it from the alerts, compliance and registry topics."""

from monitor.history.chain import ChainCheck
from monitor.history.store import HistoryStore, Source, history_url

__all__ = ["ChainCheck", "HistoryStore", "Source", "history_url"]
