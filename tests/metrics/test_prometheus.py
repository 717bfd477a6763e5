"""/metrics/prometheus serves the guide's metrics under the guide's names and types, plus Python figures."""

from instrumentation import metrics

# reference/instrumentation-guide.txt, "Available Metrics": exposition name -> type.
GUIDE_APPLICATION = {
    "llm_proxy_uptime_seconds": "gauge",
    "llm_proxy_requests_total": "counter",
    "llm_proxy_errors_total": "counter",
    "llm_proxy_cache_hits_total": "counter",
    "llm_proxy_cache_misses_total": "counter",
    "llm_proxy_cache_bypass_total": "counter",
    "llm_proxy_cache_stores_total": "counter",
}
GUIDE_RUNTIME = {
    "llm_proxy_goroutines": "gauge",
    "llm_proxy_memory_heap_alloc_bytes": "gauge",
    "llm_proxy_memory_heap_sys_bytes": "gauge",
    "llm_proxy_memory_heap_idle_bytes": "gauge",
    "llm_proxy_memory_heap_inuse_bytes": "gauge",
    "llm_proxy_memory_heap_released_bytes": "gauge",
    "llm_proxy_memory_total_alloc_bytes": "counter",
    "llm_proxy_memory_sys_bytes": "gauge",
    "llm_proxy_memory_mallocs_total": "counter",
    "llm_proxy_memory_frees_total": "counter",
    "llm_proxy_gc_runs_total": "counter",
    "llm_proxy_gc_pause_total_seconds": "counter",
    "llm_proxy_gc_next_bytes": "gauge",
}
BEYOND_THE_GUIDE = {
    "llm_proxy_requests_by_status_class_total": "counter",
    "llm_proxy_events_published_total": "counter",
    "llm_proxy_events_dropped_total": "counter",
    "llm_proxy_overhead_seconds": "histogram",
    "llm_proxy_upstream_ttfb_seconds": "histogram",
    "llm_proxy_dispatch_lag": "gauge",
    "llm_proxy_dispatch_pending": "gauge",
    "llm_proxy_dispatch_dead_letter": "gauge",
    "llm_proxy_python_threads": "gauge",
    "llm_proxy_python_asyncio_tasks": "gauge",
    # prometheus_client's process and GC collectors
    "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "python_gc_collections_total": "counter",
    # django-prometheus (requests outside /v1, and the database)
    "django_http_requests_total_by_method_total": "counter",
    "django_http_responses_total_by_status_total": "counter",
    "django_db_execute_total": "counter",
    "django_db_query_duration_seconds": "histogram",
}


def test_the_guides_application_metrics_have_its_names_and_types(scrape):
    served = scrape().types
    assert {name: served.get(name) for name in GUIDE_APPLICATION} == GUIDE_APPLICATION


def test_the_guides_runtime_metrics_have_its_names_and_types(scrape):
    served = scrape().types
    assert {name: served.get(name) for name in GUIDE_RUNTIME} == GUIDE_RUNTIME


def test_python_figures_latency_histograms_dispatch_and_django_metrics_are_served(scrape, client):
    client.get("/health")  # one request through django-prometheus's middlewares
    served = scrape().types
    assert {name: served.get(name) for name in BEYOND_THE_GUIDE} == BEYOND_THE_GUIDE


def test_help_texts_say_what_each_runtime_figure_measures_in_python(scrape):
    text = scrape().text
    assert "# HELP llm_proxy_goroutines Concurrent units of work: live asyncio tasks plus Python threads" in text
    assert "# HELP llm_proxy_gc_pause_total_seconds" in text and "gc.callbacks" in text
    assert "not bytes" in text  # llm_proxy_gc_next_bytes explains Python's count-based trigger


def test_the_exposition_is_what_the_guides_example_shows(scrape):
    text = scrape().text
    assert (
        "# HELP llm_proxy_requests_total Total number of proxy requests\n# TYPE llm_proxy_requests_total counter\n"
        in text
    )
    assert "\nllm_proxy_gc_pause_total_seconds " in text  # Go-style counter name, no _total appended
    assert "\nllm_proxy_memory_total_alloc_bytes " in text


def test_runtime_figures_are_measured(scrape):
    result = scrape()
    assert result.value("llm_proxy_memory_sys_bytes") > 10_000_000  # a Django process holds tens of MB
    assert result.value("llm_proxy_goroutines") >= result.value("llm_proxy_python_threads") >= 1
    assert result.value("llm_proxy_gc_runs_total") >= 1
    assert result.value("llm_proxy_uptime_seconds") > 0


def test_counters_move_when_requests_errors_hits_bypasses_and_stores_are_counted(scrape):
    before = scrape()
    metrics.count("requests", status_class="2xx")
    metrics.count("requests", status_class="2xx")
    metrics.count("requests", status_class="5xx")
    metrics.count("errors")
    metrics.count("cache_hits", 3)
    metrics.count("cache_misses")
    metrics.count("cache_bypass")
    metrics.count("cache_stores", 2)
    metrics.count("events_published", 4)
    metrics.count("events_dropped")
    after = scrape()

    def moved(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("llm_proxy_requests_total") == 3
    assert moved("llm_proxy_requests_by_status_class_total", status_class="2xx") == 2
    assert moved("llm_proxy_requests_by_status_class_total", status_class="5xx") == 1
    assert moved("llm_proxy_errors_total") == 1
    assert moved("llm_proxy_cache_hits_total") == 3
    assert moved("llm_proxy_cache_misses_total") == 1
    assert moved("llm_proxy_cache_bypass_total") == 1
    assert moved("llm_proxy_cache_stores_total") == 2
    assert moved("llm_proxy_events_published_total") == 4
    assert moved("llm_proxy_events_dropped_total") == 1


def test_latency_observations_land_in_the_histograms(scrape):
    before = scrape()
    metrics.observe("proxy_overhead_seconds", 0.0004)
    metrics.observe("upstream_ttfb_seconds", 0.2)
    after = scrape()
    assert after.value("llm_proxy_overhead_seconds_count") - before.value("llm_proxy_overhead_seconds_count") == 1
    bucket = {"le": "0.0005"}
    assert (
        after.value("llm_proxy_overhead_seconds_bucket", **bucket)
        - before.value("llm_proxy_overhead_seconds_bucket", **bucket)
        == 1
    )
    assert (
        after.value("llm_proxy_upstream_ttfb_seconds_sum") - before.value("llm_proxy_upstream_ttfb_seconds_sum") > 0.19
    )


def test_counting_never_raises(scrape):
    metrics.count("requests", status_class=200, unexpected="label")  # a non-string value, an unknown label
    metrics.count("dispatch delivered/ok", service="file")  # an unknown name with characters Prometheus refuses
    metrics.count("dispatch delivered/ok", other="label")  # the same name with different labels
    metrics.count("errors", "not a number")
    metrics.observe("proxy_overhead_seconds", "slow")
    assert scrape().value("llm_proxy_dispatch_delivered_ok_total", service="file") == 1
