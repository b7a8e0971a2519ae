// bfgg's launcher for Gatling (compiled with javac when a run is prepared;
// only JDK classes, everything of Gatling's is reached by reflection).
//
// It runs io.gatling.app.Gatling.main unchanged. Its one addition is what
// happens on SIGTERM or SIGINT: Gatling has no shutdown path of its own for
// a signal, and simulation.log is written through an 8 KiB buffer, so a
// plain signal loses every record still in that buffer. Here the signal
// instead finds Gatling's log writer (an actor: the object graph is walked
// from the live threads) and sends it Gatling's own Stop message through its
// mailbox, so the writer flushes and closes the file in its own thread, as at
// the end of a run; then the JVM halts. If the writer cannot be found (a
// Gatling whose internals differ) it says so on stderr and halts anyway.
package bfgg;

import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

public final class GatlingLauncher {
  private static final String WRITER = "io.gatling.core.stats.writer.LogFileDataWriter";
  private static final String STOP = "io.gatling.core.stats.writer.DataWriterMessage$Stop";
  /** Most objects visited looking for the writer. */
  private static final int MAX_OBJECTS = 5_000_000;
  /** Longest search, then longest wait for the writer to close the file. */
  private static final long SEARCH_NANOS = 3_000_000_000L;
  private static final long CLOSE_NANOS = 5_000_000_000L;

  private static volatile boolean stopping;

  public static void main(String[] args) throws Throwable {
    sun.misc.SignalHandler onSignal = signal -> stop(signal.getName(), 128 + signal.getNumber());
    sun.misc.Signal.handle(new sun.misc.Signal("TERM"), onSignal);
    sun.misc.Signal.handle(new sun.misc.Signal("INT"), onSignal);
    Method main = Class.forName("io.gatling.app.Gatling").getMethod("main", String[].class);
    try {
      main.invoke(null, (Object) args);
    } catch (InvocationTargetException e) {
      throw e.getCause();
    }
  }

  private static void stop(String signal, int code) {
    if (stopping) {
      return;
    }
    stopping = true;
    try {
      Object writer = find();
      if (writer == null) {
        System.err.println(
            "bfgg: SIG" + signal + ": Gatling's log writer not found; records still in its buffer are lost");
      } else {
        Method self = method(writer.getClass(), "self");
        Object ref = self.invoke(writer);
        Class<?> promises = Class.forName("scala.concurrent.Promise$");
        Object module = promises.getField("MODULE$").get(null);
        Object promise = promises.getMethod("apply").invoke(module);
        Object message =
            Class.forName(STOP)
                .getConstructor(Class.forName("scala.concurrent.Promise"))
                .newInstance(promise);
        Method bang = method(ref.getClass(), "$bang");
        bang.invoke(ref, message);
        Method done = promise.getClass().getMethod("isCompleted");
        long until = System.nanoTime() + CLOSE_NANOS;
        while (!(Boolean) done.invoke(promise) && System.nanoTime() < until) {
          Thread.sleep(5);
        }
        System.err.println(
            (Boolean) done.invoke(promise)
                ? "bfgg: SIG" + signal + ": simulation.log flushed and closed"
                : "bfgg: SIG" + signal + ": the log writer did not close simulation.log in time");
      }
    } catch (Throwable t) {
      System.err.println("bfgg: SIG" + signal + ": could not flush simulation.log: " + t);
    }
    System.err.flush();
    System.out.flush();
    Runtime.getRuntime().halt(code);
  }

  /** A method of `c` or its superclasses by name, made accessible. */
  private static Method method(Class<?> c, String name) throws NoSuchMethodException {
    for (Class<?> k = c; k != null; k = k.getSuperclass()) {
      for (Method m : k.getDeclaredMethods()) {
        if (m.getName().equals(name) && (name.equals("self") ? m.getParameterCount() == 0 : m.getParameterCount() == 1)) {
          m.setAccessible(true);
          return m;
        }
      }
    }
    throw new NoSuchMethodException(c.getName() + "." + name);
  }

  /** Gatling's LogFileDataWriter, found by walking from the live threads. */
  private static Object find() {
    IdentityHashMap<Object, Boolean> seen = new IdentityHashMap<>();
    ArrayDeque<Object> queue = new ArrayDeque<>(Thread.getAllStackTraces().keySet());
    Map<Class<?>, List<Field>> fields = new HashMap<>();
    long until = System.nanoTime() + SEARCH_NANOS;
    while (!queue.isEmpty() && seen.size() < MAX_OBJECTS) {
      if ((seen.size() & 4095) == 0 && System.nanoTime() > until) {
        return null;
      }
      Object o = queue.poll();
      if (seen.put(o, Boolean.TRUE) != null) {
        continue;
      }
      Class<?> c = o.getClass();
      if (c.getName().equals(WRITER)) {
        return o;
      }
      if (o instanceof Class || o instanceof ClassLoader || o instanceof String) {
        continue;
      }
      if (c.isArray()) {
        if (!c.getComponentType().isPrimitive()) {
          for (Object e : (Object[]) o) {
            if (e != null) {
              queue.add(e);
            }
          }
        }
        continue;
      }
      for (Field f : fields.computeIfAbsent(c, GatlingLauncher::references)) {
        try {
          Object v = f.get(o);
          if (v != null) {
            queue.add(v);
          }
        } catch (IllegalAccessException | RuntimeException e) {
          // Not readable: not followed.
        }
      }
    }
    return null;
  }

  /** The instance fields of `c` (and its superclasses) that hold objects. */
  private static List<Field> references(Class<?> c) {
    List<Field> out = new ArrayList<>();
    for (Class<?> k = c; k != null; k = k.getSuperclass()) {
      for (Field f : k.getDeclaredFields()) {
        if (Modifier.isStatic(f.getModifiers()) || f.getType().isPrimitive()) {
          continue;
        }
        try {
          f.setAccessible(true);
          out.add(f);
        } catch (RuntimeException e) {
          // A module that does not open the package: not followed.
        }
      }
    }
    return out;
  }
}
