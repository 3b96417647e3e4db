/* libpcap for Swift (hosted only): the offline reader and the dump (savefile) writer. */
#ifndef CPCAP_H
#define CPCAP_H
#include <pcap/pcap.h>
#endif
