// Command qtunnel-gui is QTunnel's desktop client: a tray icon that
// connects and disconnects, a settings window, and the client engine
// installed as a background service. It drives the engine only through
// the local control API (package control).
package main
