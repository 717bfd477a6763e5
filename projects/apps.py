from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    verbose_name = "Projects"
    name = "projects"
    default_auto_field = "django.db.models.BigAutoField"
