/**
 * Our messages, apart from how they travel: the Avro codec of the generated schema types
 * ({@code schemas/kafka/messages.avdl}, v2; v1 read and upgraded), the poison-message error, and the working-image pixel codec. Kept
 * out of {@code queue} so that inference, report and delivery read and write messages without depending
 * on the Kafka package.
 */
package org.cxrgateway.message;
