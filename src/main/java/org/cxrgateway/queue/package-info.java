/** Kafka: the embedded default broker, topics, Avro codecs, producers, consumers and dead letters. */
package org.cxrgateway.queue;
