package org.cxrgateway.faults;

import java.lang.instrument.Instrumentation;
import java.util.ArrayList;
import java.util.List;

/**
 * Loaded into the running gateway through the attach API: a thread that allocates until the heap is
 * exhausted, so the gateway meets a real {@link OutOfMemoryError} in its own JVM, with its own flags.
 */
public final class OomAgent {

    private OomAgent() {
    }

    public static void agentmain(String args, Instrumentation inst) {
        Thread t = new Thread(() -> {
            List<long[]> hog = new ArrayList<>();
            while (true) {
                hog.add(new long[8 * 1024 * 1024]); // 64 MiB a step
            }
        }, "oom-fault");
        t.setDaemon(true);
        t.start();
    }
}
