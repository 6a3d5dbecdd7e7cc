/** Kafka: the embedded default broker, topics, producers, consumers, dead letters and the consumer-lag gauge. */
package org.cxrgateway.queue;
