# fig. 19 of the Unikraft paper (EuroSys'21), re-run here: TX throughput over vhost-user vs frame
# size, one line per sender, in Mpps (left) and Gbit/s (right); the paper's two vhost-user lines
# (measured over a 10 GbE NIC, so capped by its line rate) dashed, for their shape.
#   gnuplot -e "datafile='fig19.csv'; paperfile='fig19-paper.csv'; outfile='fig19.png'" fig19.gp
# The CSVs: path,frame_bytes,mpps,gbps (Benchmarks/compare/compare.py writes them).
if (!exists("datafile")) datafile = 'compare-results/fig19.csv'
if (!exists("paperfile")) paperfile = 'compare-results/fig19-paper.csv'
if (!exists("outfile")) outfile = 'compare-results/fig19.png'

set terminal pngcairo size 1400,560 font "sans,11"
set output outfile
set datafile separator ","
set logscale x 2
set xrange [56:1700]
set xtics ("64" 64, "128" 128, "256" 256, "512" 512, "1024" 1024, "1500" 1500)
set xlabel "frame size (bytes, FCS included)"
set grid
set key top right box opaque
set yrange [0:*]

# Ours: solid, coloured; the paper's: grey and black, dashed and dotted (their two lines lie on top
# of each other: both hit the 10 GbE line rate).
set style line 1 lc rgb "#d62728" lw 2 pt 7 ps 1.2
set style line 2 lc rgb "#1f77b4" lw 2 pt 5 ps 1.2
set style line 3 lc rgb "#2ca02c" lw 2 pt 9 ps 1.4
set style line 11 lc rgb "#888888" lw 2 dt 2 pt 6 ps 1.6
set style line 12 lc rgb "#000000" lw 1 dt 3 pt 4 ps 1.0

ours = "pktgen-virtionet pktgen-dpdk testpmd-txonly"
titles = "'pktgen tx, our VirtioNet' 'pktgen tx, DPDK net\\_virtio\\_user' 'testpmd txonly, net\\_virtio\\_user'"
paper = "paper-unikraft-vhost-user paper-linux-dpdk-vm-vhost-user"
papertitles = "'paper: Unikraft (10 GbE)' 'paper: Linux VM + DPDK (10 GbE)'"
# Column c of the rows whose path is p (NaN elsewhere, the header and comments included).
sel(p, c) = (strcol(1) eq p) ? column(c) : NaN

set multiplot layout 1,2 title "fig. 19 re-run: TX into dpdk-testpmd net\\_vhost rxonly (one sender core)"
set ylabel "Mpps"
set title "packet rate"
plot for [i=1:words(ours)] datafile using 2:(sel(word(ours, i), 3)) with linespoints ls i title word(titles, i), \
     for [i=1:words(paper)] paperfile using 2:(sel(word(paper, i), 3)) with linespoints ls 10 + i title word(papertitles, i)
set ylabel "Gbit/s (frame bytes, without preamble and gap)"
set title "bit rate"
set key top left box opaque
plot for [i=1:words(ours)] datafile using 2:(sel(word(ours, i), 4)) with linespoints ls i title word(titles, i), \
     for [i=1:words(paper)] paperfile using 2:(sel(word(paper, i), 4)) with linespoints ls 10 + i title word(papertitles, i)
unset multiplot
