"""A Locust user for bfgg's built-in test target (`bfgg target`).

Run by scenarios/locust/scenario.toml: bfgg starts Locust with the scenario's
base_url as the host and drives the number of users from its [load] stages,
so nothing here sets a host, a user count or a run time.

Each simulated user logs in once, then alternates between its profile
(`GET /me`, three times in four) and the home page (`GET /`), pausing
100-500 ms between tasks like a person clicking through an app.

Reading the results: every request is reported under its `name`, so the
login, the authenticated call and the home page each get their own latency
percentiles and error counts. A request marked `failure(...)` counts as an
error with that text as its reason, even when the HTTP status was 200.
"""

import itertools

from locust import HttpUser, between, task

# A distinct user name per simulated user in this process. The target accepts
# any name of letters, digits and . _ @ -, with any non-empty password.
_user_ids = itertools.count(1)


class ApiUser(HttpUser):
    # Think time after every task: uniformly 0.1 to 0.5 s. It shapes the load
    # as much as the user count does: with 10 users and ~0.3 s of think time
    # plus the response time, expect roughly 30 requests per second.
    wait_time = between(0.1, 0.5)

    def on_start(self):
        """Runs once per user before its first task: log in, keep the token."""
        self.user_name = f"user{next(_user_ids)}"
        # `name` is the key results are reported under; `catch_response` lets
        # us decide what counts as a failure instead of trusting the status.
        with self.client.post(
            "/login",
            json={"user": self.user_name, "password": "secret"},
            name="login",
            catch_response=True,
        ) as response:
            token = None
            if response.status_code == 200:
                try:
                    token = response.json().get("token")
                except ValueError:
                    pass
            if token:
                response.success()
                # Sent with every later request of this user, like a browser
                # session. (This is where [target] headers go for Locust.)
                self.client.headers["authorization"] = f"Bearer {token}"
            else:
                # The user carries on without a token: its /me calls then
                # fail with 401, which shows up in the "me" errors.
                response.failure(f"login failed: status {response.status_code}")

    @task(3)
    def me(self):
        """The authenticated call: three times as frequent as the home page."""
        with self.client.get("/me", name="me", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
                return
            try:
                user = response.json().get("user")
            except ValueError:
                response.failure("the body is not JSON")
                return
            # A 200 with someone else's profile is still an error: check it.
            if user == self.user_name:
                response.success()
            else:
                response.failure(f"expected user {self.user_name!r}, got {user!r}")

    @task(1)
    def home(self):
        """A light, unauthenticated page; a non-2xx status counts as an error."""
        self.client.get("/", name="home")
