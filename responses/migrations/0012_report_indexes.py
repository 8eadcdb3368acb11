"""Indexes for the report (responses/services/analytics.py), built without locking writes.

- `report_mention_posted`: the mentions of a period, by `posted_at`, carrying every column
  the report's facts read, so a period is one index-only range scan instead of a pass over
  the whole mentions table.
- `report_reply_first_sent`: each mention's sent replies in time order, so its first reply
  is the first index entry of its mention (DISTINCT ON without a sort).

Raw SQL on purpose: the first index is on listening's table, which this app only reads; the
report owns its indexes and can drop them with this migration. CONCURRENTLY keeps the desk
writable while a large table is indexed, which needs a migration outside a transaction.
"""

from django.db import migrations


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("listening", "0011_private_cases_and_approvals"),
        ("responses", "0011_alerts"),
    ]

    operations = [
        migrations.RunSQL(
            sql="""
                CREATE INDEX CONCURRENTLY IF NOT EXISTS report_mention_posted
                    ON listening_mention (posted_at)
                    INCLUDE (id, status, platform, keyword_id, author_id, sentiment_label,
                             claimed_at, claimed_by_id)
            """,
            reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS report_mention_posted",
        ),
        migrations.RunSQL(
            sql="""
                CREATE INDEX CONCURRENTLY IF NOT EXISTS report_reply_first_sent
                    ON responses_reply (mention_id, posted_at, id)
                    INCLUDE (agent_id, origin)
                    WHERE status = 'sent'
            """,
            reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS report_reply_first_sent",
        ),
    ]
