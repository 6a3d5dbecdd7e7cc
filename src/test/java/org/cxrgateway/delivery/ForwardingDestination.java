package org.cxrgateway.delivery;

/**
 * A test's view of a real destination: the same name and SRs-first behaviour, so DeliveryService treats it as
 * the destination itself, with {@link #deliver} left to the test to watch or hold each send before passing it on.
 */
abstract class ForwardingDestination implements Destination {
    final Destination target;

    ForwardingDestination(Destination target) {
        this.target = target;
    }

    @Override
    public String name() {
        return target.name();
    }

    @Override
    public boolean srsFirst() {
        return target.srsFirst();
    }
}
