urlpatterns: list = []  # METRICS_PATH and METRICS_PATH/prometheus
