"""Carry the rollup models' content types (and with them their permissions) over from the `dispatch` app.

Permissions hang on a content type: renaming the `dispatch` content types to `usage` keeps every permission
row, and every user's and group's grant of it, so `dispatch.view_usagerollup` becomes
`usage.view_usagerollup` for whoever had it, and no stale `dispatch` rows are left behind. On a new database
there is nothing to rename yet (content types are created after `migrate`), and this does nothing.
"""

from django.db import migrations

MODELS = ("usagerollup", "cachehitmark")


def rename_content_types(apps, schema_editor, old: str = "dispatch", new: str = "usage") -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MODELS:
        if content_type.objects.using(db).filter(app_label=new, model=model).exists():
            continue  # already created under the new label (never by `migrate` itself): leave both as they are
        content_type.objects.using(db).filter(app_label=old, model=model).update(app_label=new)


def rename_back(apps, schema_editor) -> None:
    rename_content_types(apps, schema_editor, old="usage", new="dispatch")


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(rename_content_types, rename_back)]
