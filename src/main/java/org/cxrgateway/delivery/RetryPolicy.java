package org.cxrgateway.delivery;

import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;

/** Exponential backoff with "equal jitter": half the delay fixed, half random, so retries of many studies spread out. */
public record RetryPolicy(int maxAttempts, Duration initialBackoff, Duration maxBackoff) {

    /** Delay before attempt {@code next} (2 = the first retry). */
    public long delayMillis(int next) {
        double exp = initialBackoff.toMillis() * Math.pow(2, Math.max(0, next - 2));
        long capped = (long) Math.min(maxBackoff.toMillis(), exp);
        return capped / 2 + (long) (ThreadLocalRandom.current().nextDouble() * (capped - capped / 2 + 1));
    }
}
