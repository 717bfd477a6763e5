urlpatterns: list = []  # /v1/* (the proxy view)
