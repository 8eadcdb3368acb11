"""EXPLAIN (ANALYZE, BUFFERS) of the SQL a benchmark just ran, and the plan node that cost most.

Uses the ORM's connection: import it only after `django.setup()`.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connection, transaction


def explain(sql: str) -> dict[str, Any]:
    """Run `sql` under EXPLAIN ANALYZE, in a transaction rolled back afterwards.

    ANALYZE executes the statement; the rollback undoes whatever it wrote or locked. Returns
    the plan as text, the execution time, and the node with the most time of its own (its
    total minus its children's), which is where a slow query spends it.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)
        (document,) = cursor.fetchone()
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        text = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    if isinstance(document, str):  # psycopg2 usually parses json already
        document = json.loads(document)
    root = document[0]
    node, own_ms = _costliest(root["Plan"])
    return {
        "sql": sql,
        "execution_ms": round(root["Execution Time"], 3),
        "costliest_node": describe(node),
        "costliest_node_ms": round(own_ms, 3),
        "plan": text,
    }


def _wall_ms(node: dict[str, Any], processes: int) -> float:
    """A node's time as the clock on the wall saw it.

    EXPLAIN gives the average per loop. Under a Gather, the leader and each worker count as a
    loop, running side by side: their loops are divided among them, not added end to end.
    """
    return node.get("Actual Total Time", 0.0) * node.get("Actual Loops", 1) / processes


def _costliest(node: dict[str, Any], processes: int = 1) -> tuple[dict[str, Any], float]:
    children = node.get("Plans", [])
    below = processes
    if node["Node Type"] in ("Gather", "Gather Merge"):
        below = node.get("Workers Launched", 0) + 1
    own = _wall_ms(node, processes) - sum(_wall_ms(child, below) for child in children)
    best = (node, own)
    for child in children:
        candidate = _costliest(child, below)
        if candidate[1] > best[1]:
            best = candidate
    return best


def describe(node: dict[str, Any]) -> str:
    """'Bitmap Heap Scan on listening_mention (20,113 rows)'."""
    text = node["Node Type"]
    if "Index Name" in node:
        text += f" using {node['Index Name']}"
    if "Relation Name" in node:
        text += f" on {node['Relation Name']}"
    if "Sort Key" in node:
        text += f" by {', '.join(node['Sort Key'])}"
    rows = node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
    text += f" ({rows:,} rows"
    if node.get("Sort Space Type") == "Disk":
        text += f", sorted on disk: {node.get('Sort Space Used', 0):,} kB"
    return text + ")"
