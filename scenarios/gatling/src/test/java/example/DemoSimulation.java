package example;

import static io.gatling.javaapi.core.CoreDsl.*;
import static io.gatling.javaapi.http.HttpDsl.*;

import io.gatling.javaapi.core.*;
import java.time.Duration;
import io.gatling.javaapi.http.*;

/**
 * bfgg's Gatling demo, aimed at `bfgg target`: each virtual user loads the
 * home page, then logs in and reads its profile with the token it got.
 *
 * <p>Load comes from system properties, so bfgg can give each agent its
 * share (`split = { users = ..., rate = ... }` in the scenario):
 * <ul>
 *   <li>{@code users}: users started at once (default 10);</li>
 *   <li>{@code rate}: then this many new users per second (default 5)...</li>
 *   <li>{@code duration}: ...for this many seconds (default 30);</li>
 *   <li>{@code baseUrl}: the target (default http://127.0.0.1:8080);</li>
 *   <li>{@code anonymousPercent}: share of users that skip the login
 *       (default 0): their /me gets 401 and fails its check (a KO request),
 *       and their second /me, which needs a token they never got, cannot
 *       even be built (Gatling logs an error, not a request);</li>
 *   <li>{@code maxFailedPercent}: if set, a Gatling assertion that fewer
 *       than this percentage of requests failed (none by default: bfgg's
 *       thresholds judge the run; a failed assertion makes Gatling exit 2);</li>
 *   <li>{@code bfgg.agent.index} / {@code bfgg.agent.count}: which agent this
 *       is, set by bfgg (only logged here).</li>
 * </ul>
 */
public class DemoSimulation extends Simulation {

  // The lines a simulation needs to take its share of the load from bfgg:
  static final int USERS = Integer.getInteger("users", 10);
  static final double RATE = Double.parseDouble(System.getProperty("rate", "5"));
  static final int DURATION = Integer.getInteger("duration", 30);
  static final String BASE_URL = System.getProperty("baseUrl", "http://127.0.0.1:8080");
  static final double ANONYMOUS = Double.parseDouble(System.getProperty("anonymousPercent", "0"));
  static final String MAX_FAILED_PERCENT = System.getProperty("maxFailedPercent");
  static final String AGENT_INDEX = System.getProperty("bfgg.agent.index", "0");
  static final String AGENT_COUNT = System.getProperty("bfgg.agent.count", "1");
  // (and bfgg.duration, the run's longest duration in seconds: see setUp)

  HttpProtocolBuilder httpProtocol =
      http.baseUrl(BASE_URL).acceptHeader("application/json, text/plain").userAgentHeader("bfgg-gatling-demo");

  ChainBuilder home = exec(http("home").get("/").check(status().is(200)));

  ChainBuilder loginThenMe =
      exec(session -> session.set("user", "u" + session.userId()))
          .group("auth")
          .on(
              exec(
                      http("login")
                          .post("/login")
                          .body(StringBody("{\"user\":\"#{user}\",\"password\":\"secret\"}"))
                          .asJson()
                          .check(status().is(200), jsonPath("$.token").saveAs("token")))
                  .exec(
                      http("me")
                          .get("/me")
                          .header("authorization", "Bearer #{token}")
                          .check(status().is(200), jsonPath("$.user").isEL("#{user}"))));

  // Users who skip the login: the first /me is sent without a token, gets 401
  // and fails its check (a KO); the second refers to the token they never
  // saved, so Gatling cannot build it (an ERROR record, no request is sent).
  ChainBuilder anonymousMe =
      exec(http("me anonymous").get("/me").check(status().is(200)))
          .exec(
              http("me stale token")
                  .get("/me")
                  .header("authorization", "Bearer #{token}")
                  .check(status().is(200)));

  ScenarioBuilder journey =
      scenario("journey")
          .exec(home)
          .randomSwitchOrElse()
          .on(percent(ANONYMOUS).then(anonymousMe))
          .orElse(loginThenMe);

  {
    System.out.printf(
        "bfgg agent %s of %s: users=%d rate=%s/s duration=%ds baseUrl=%s%n",
        AGENT_INDEX, AGENT_COUNT, USERS, RATE, DURATION, BASE_URL);
    SetUp setUp =
        setUp(
                journey.injectOpen(
                    atOnceUsers(USERS), constantUsersPerSec(RATE).during(DURATION)))
            .protocols(httpProtocol)
            // bfgg's [load] duration, so the run ends the Gatling way (its
            // log flushed) rather than by bfgg stopping the JVM.
            .maxDuration(Duration.ofSeconds(Long.getLong("bfgg.duration", 3600)));
    if (MAX_FAILED_PERCENT != null) {
      setUp.assertions(
          global().failedRequests().percent().lt(Double.parseDouble(MAX_FAILED_PERCENT)));
    }
  }
}
