# A locustfile for the scenario tests (never run): only its existence matters.
from locust import HttpUser, task


class ApiUser(HttpUser):
    @task
    def home(self):
        self.client.get("/")
