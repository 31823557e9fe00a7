"""Where the embedded broker (Tansu 0.6) departs from Apache Kafka, and telling which broker it is.

Tansu reports a partition's end offset as the start of its last record batch plus one, so the
rest of that batch lies past the end it reports. The worker reads past it (a changelog's tail
on takeover, the dead-letter topic's depth) only on a broker that does this: Apache Kafka
reports the true end, and there the extra reads are left out.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.kafka import KafkaTarget

log = logging.getLogger(__name__)

EMBEDDED_CLUSTER_ID = "tansu_cluster"  # the cluster id every Tansu broker reports


async def reports_short_end_offsets(kafka: KafkaTarget) -> bool:
    """Whether the broker is the embedded one, whose reported end offsets can fall short.

    Asked once at start (DescribeCluster's cluster id). A broker that does not answer the
    request is taken to fall short: reading past an end that is true costs one small fetch.
    """
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    from monitor.kafka import client_options

    admin = AIOKafkaAdminClient(**client_options(kafka), client_id="aftersales-monitor-admin")
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    except (KafkaError, OSError) as exc:
        log.warning("could not tell which broker this is (%r); end offsets will be read past", exc)
        return True
    finally:
        await admin.close()
    return bool(cluster.get("cluster_id") == EMBEDDED_CLUSTER_ID)
