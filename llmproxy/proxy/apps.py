from django.apps import AppConfig


class ProxyConfig(AppConfig):
    name = "llmproxy.proxy"
    label = "proxy"
    verbose_name = "Proxy"
