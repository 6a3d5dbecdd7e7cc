package org.cxrgateway.dicom;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.SequenceInputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.SocketException;

/**
 * A connected socket whose input starts with bytes we already read. We read the A-ASSOCIATE-RQ
 * ourselves to check the calling AE (PixelMed's acceptor only checks the called AE), then hand
 * PixelMed this socket so that it parses the same request again. After the negotiation only PixelMed's
 * sends go through it: the PDUs that follow are read by {@link DimseDispatcher.PDataReader}.
 */
final class ReplaySocket extends Socket {
    private final Socket delegate;
    private final InputStream in;
    private final OutputStream out;

    /** @param rest the input after alreadyRead (the listener's {@link PduGuardInputStream}) */
    ReplaySocket(Socket delegate, byte[] alreadyRead, InputStream rest) throws IOException {
        this.delegate = delegate;
        this.in = new SequenceInputStream(new ByteArrayInputStream(alreadyRead), rest);
        this.out = delegate.getOutputStream();
    }

    @Override public InputStream getInputStream() { return in; }
    @Override public OutputStream getOutputStream() { return out; }
    @Override public synchronized void close() throws IOException { delegate.close(); }
    @Override public boolean isClosed() { return delegate.isClosed(); }
    @Override public boolean isConnected() { return delegate.isConnected(); }
    @Override public boolean isBound() { return delegate.isBound(); }
    @Override public boolean isInputShutdown() { return delegate.isInputShutdown(); }
    @Override public boolean isOutputShutdown() { return delegate.isOutputShutdown(); }
    @Override public void shutdownInput() throws IOException { delegate.shutdownInput(); }
    @Override public void shutdownOutput() throws IOException { delegate.shutdownOutput(); }
    @Override public InetAddress getInetAddress() { return delegate.getInetAddress(); }
    @Override public InetAddress getLocalAddress() { return delegate.getLocalAddress(); }
    @Override public int getPort() { return delegate.getPort(); }
    @Override public int getLocalPort() { return delegate.getLocalPort(); }
    @Override public SocketAddress getRemoteSocketAddress() { return delegate.getRemoteSocketAddress(); }
    @Override public SocketAddress getLocalSocketAddress() { return delegate.getLocalSocketAddress(); }
    @Override public synchronized void setSoTimeout(int timeout) throws SocketException { delegate.setSoTimeout(timeout); }
    @Override public synchronized int getSoTimeout() throws SocketException { return delegate.getSoTimeout(); }
    @Override public void setTcpNoDelay(boolean on) throws SocketException { delegate.setTcpNoDelay(on); }
    @Override public boolean getTcpNoDelay() throws SocketException { return delegate.getTcpNoDelay(); }
    @Override public void setSoLinger(boolean on, int linger) throws SocketException { delegate.setSoLinger(on, linger); }
    @Override public int getSoLinger() throws SocketException { return delegate.getSoLinger(); }
    @Override public synchronized void setReceiveBufferSize(int size) throws SocketException { delegate.setReceiveBufferSize(size); }
    @Override public synchronized int getReceiveBufferSize() throws SocketException { return delegate.getReceiveBufferSize(); }
    @Override public synchronized void setSendBufferSize(int size) throws SocketException { delegate.setSendBufferSize(size); }
    @Override public synchronized int getSendBufferSize() throws SocketException { return delegate.getSendBufferSize(); }
    @Override public void setKeepAlive(boolean on) throws SocketException { delegate.setKeepAlive(on); }
    @Override public boolean getKeepAlive() throws SocketException { return delegate.getKeepAlive(); }
    @Override public String toString() { return "Replay" + delegate; }
}
