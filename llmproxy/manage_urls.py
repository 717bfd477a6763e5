urlpatterns: list = []  # /manage/* routes (management API)
