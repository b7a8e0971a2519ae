// bfgg's load check of a JMeter test plan, run with JMeter's own class path
// (groovy.ui.GroovyMain <this file> <jmeter home> <plan>): the plan loaded
// by SaveService and its elements made, as `jmeter -n -t` does before it
// runs anything. No thread starts, nothing is sent.
import org.apache.jmeter.JMeter
import org.apache.jmeter.save.SaveService
import org.apache.jmeter.services.FileServer
import org.apache.jmeter.util.JMeterUtils

def home = args[0]
def plan = new File(args[1])
try {
    JMeterUtils.setJMeterHome(home)
    JMeterUtils.loadJMeterProperties(home + "/bin/jmeter.properties")
    JMeterUtils.initLocale()
    FileServer.getFileServer().setBaseForScript(plan)
    def tree = SaveService.loadTree(plan)
    JMeter.convertSubTree(tree, false)
    println "bfgg: the plan loads"
} catch (Throwable e) {
    def messages = []
    for (def c = e; c != null; c = c.cause) {
        messages << c.toString()
    }
    System.err.println(messages.unique().join("\ncaused by: "))
    System.exit(1)
}
