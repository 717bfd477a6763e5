"""The usage rollup models, which lived in the `dispatch` app until its analytics moved here.

The tables already exist when this runs: `dispatch.0001_usage_rollups` creates them (on a new database as on
an old one), so this migration only records the models as this app's (`SeparateDatabaseAndState`, no SQL),
and an existing database keeps its rows. `0002` moves the permissions that went with them.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("dispatch", "0001_usage_rollups"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='CacheHitMark',
                    fields=[
                        ('token_id', models.CharField(max_length=64, primary_key=True, serialize=False)),
                        ('cache_hit_count', models.BigIntegerField(default=0)),
                    ],
                    options={
                        'db_table': 'usage_cache_hit_marks',
                    },
                ),
                migrations.CreateModel(
                    name='UsageRollup',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('hour', models.DateTimeField(db_index=True)),
                        ('project_id', models.CharField(blank=True, db_index=True, default='', max_length=64)),
                        ('token_id', models.CharField(blank=True, default='', max_length=64)),
                        ('requests', models.BigIntegerField(default=0)),
                        ('errors', models.BigIntegerField(default=0, help_text='Responses with status 400 or above.')),
                        ('prompt_tokens', models.BigIntegerField(default=0)),
                        ('completion_tokens', models.BigIntegerField(default=0)),
                        ('cache_hits', models.BigIntegerField(default=0)),
                        ('latency_ms_total', models.BigIntegerField(default=0)),
                        ('latency_le_10', models.BigIntegerField(default=0)),
                        ('latency_le_25', models.BigIntegerField(default=0)),
                        ('latency_le_50', models.BigIntegerField(default=0)),
                        ('latency_le_100', models.BigIntegerField(default=0)),
                        ('latency_le_250', models.BigIntegerField(default=0)),
                        ('latency_le_500', models.BigIntegerField(default=0)),
                        ('latency_le_1000', models.BigIntegerField(default=0)),
                        ('latency_le_2500', models.BigIntegerField(default=0)),
                        ('latency_le_5000', models.BigIntegerField(default=0)),
                        ('latency_le_10000', models.BigIntegerField(default=0)),
                        ('latency_le_30000', models.BigIntegerField(default=0)),
                        ('latency_le_60000', models.BigIntegerField(default=0)),
                        ('latency_le_120000', models.BigIntegerField(default=0)),
                        ('latency_gt_120000', models.BigIntegerField(default=0)),
                    ],
                    options={
                        'verbose_name': 'usage',
                        'verbose_name_plural': 'usage',
                        'db_table': 'usage_rollups',
                        'ordering': ['-hour'],
                        'constraints': [models.UniqueConstraint(fields=('hour', 'project_id', 'token_id'), name='usage_rollup_hour_project_token')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
