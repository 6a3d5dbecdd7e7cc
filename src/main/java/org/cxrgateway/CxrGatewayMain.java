package org.cxrgateway;

import io.quarkus.runtime.Quarkus;
import io.quarkus.runtime.QuarkusApplication;
import io.quarkus.runtime.annotations.QuarkusMain;
import jakarta.enterprise.inject.Instance;
import jakarta.inject.Inject;

import java.util.Arrays;

/**
 * Entry point. Without arguments the gateway runs the roles in {@code cxr.roles} until stopped.
 * {@code score FILE.dcm...} scores files offline (no Kafka, no network) and exits.
 */
@QuarkusMain
public class CxrGatewayMain implements QuarkusApplication {

    public static final String SCORE = "score";

    @Inject
    Instance<OfflineCommand> commands;

    public static void main(String... args) {
        if (args.length > 0 && SCORE.equals(args[0])) {
            // Before Quarkus reads its configuration: the offline command runs no role at all.
            System.setProperty("cxr.roles", "none");
            System.setProperty("quarkus.http.host-enabled", "false");
            // The findings table is the output; the banner would land in the middle of it.
            System.setProperty("quarkus.banner.enabled", System.getProperty("quarkus.banner.enabled", "false"));
            System.setProperty("quarkus.log.console.level", System.getProperty("quarkus.log.console.level", "WARN"));
        }
        Quarkus.run(CxrGatewayMain.class, args);
    }

    @Override
    public int run(String... args) throws Exception {
        if (args.length > 0) {
            for (OfflineCommand command : commands) {
                if (command.name().equals(args[0])) {
                    return command.run(Arrays.copyOfRange(args, 1, args.length));
                }
            }
            System.err.println("unknown command: " + args[0] + " (known: " + SCORE + ")");
            return 2;
        }
        Quarkus.waitForExit();
        return 0;
    }

    /** A command that runs in the foreground and exits, instead of the gateway's services. */
    public interface OfflineCommand {
        String name();

        int run(String... args) throws Exception;
    }
}
