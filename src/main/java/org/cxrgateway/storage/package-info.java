/**
 * Durable files: the one place that writes state to disk (temp file in the same directory, fsync,
 * atomic rename, fsync of the directory). A leaf: it imports nothing of the gateway, so that every
 * package that keeps state on disk (ingest, inference, delivery) may use it without breaking the
 * one-way flow of data between packages.
 */
package org.cxrgateway.storage;
