// What the package offers to programs: helpers for D-Bus clients that use
// the org.kdbusbridge.Bus1 extension (README: "The org.kdbusbridge.Bus1 extension").
export { exitOnIdle, ExitOnIdleOptions } from './client/exit-on-idle';
export { BUS1_INTERFACE, BUS1_BUSY, callBus1 } from './client/bus1';
export { Attach, enableMetadata, MessageMetadata, MetadataField, parseMetadataFields, readMetadata } from './client/metadata';
