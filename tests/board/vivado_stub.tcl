# Stub Vivado commands: `tclsh` sources this, then the generated batch script (tests/board/test_bitstream_tcl.py).
#
# Every Vivado command the flow uses is defined here with the options it accepts; anything else (a typo in a
# command, an option, a pin, an IP or a CONFIG property name) stops tclsh with "STUB ERROR". Cells, pins and
# interface pins are those of the real IP (Vivado 2022-2024 names); the module reference's come from the
# X_INTERFACE_INFO declarations of the wrapper the script adds. Calls are logged to $env(STUB_LOG).

set ::log [open $::env(STUB_LOG) w]
set ::cells [dict create]
set ::sources {}
set ::proj_dir ""
set ::bd ""

proc record {args} { puts $::log $args; flush $::log }
proc fail {msg} { puts stderr "STUB ERROR: $msg"; record STUB_ERROR $msg; exit 3 }
rename unknown _tcl_unknown
proc unknown {args} { fail "unknown command: [lindex $args 0]" }

# Parse "-opt value" / "-flag" arguments; returns {options positional}.
proc parse {cmd spec argv} {
    set opts [dict create]
    set pos {}
    for {set i 0} {$i < [llength $argv]} {incr i} {
        set a [lindex $argv $i]
        if {[string index $a 0] eq "-" && ![string is double -strict $a]} {
            if {![dict exists $spec $a]} { fail "$cmd: unknown option $a" }
            if {[dict get $spec $a]} {
                incr i
                if {$i >= [llength $argv]} { fail "$cmd: $a needs a value" }
                dict set opts $a [lindex $argv $i]
            } else {
                dict set opts $a 1
            }
        } else {
            lappend pos $a
        }
    }
    return [list $opts $pos]
}

set ::ipdefs {zynq_ultra_ps_e 3.5 proc_sys_reset 5.0 axi_intc 4.1 smartconnect 1.0}
set ::pins {
    zynq_ultra_ps_e {pl_clk0 pl_resetn0 maxihpm0_fpd_aclk saxihp0_fpd_aclk pl_ps_irq0}
    proc_sys_reset {slowest_sync_clk ext_reset_in aux_reset_in mb_debug_sys_rst dcm_locked mb_reset
                    bus_struct_reset peripheral_reset interconnect_aresetn peripheral_aresetn}
    axi_intc {s_axi_aclk s_axi_aresetn intr irq}
    smartconnect {aclk aresetn}
}
set ::intf_pins {
    zynq_ultra_ps_e {M_AXI_HPM0_FPD S_AXI_HP0_FPD}
    proc_sys_reset {}
    axi_intc {s_axi interrupt}
    smartconnect {S00_AXI S01_AXI M00_AXI M01_AXI M02_AXI}
}
set ::config_keys {
    zynq_ultra_ps_e {PSU__USE__M_AXI_GP0 PSU__MAXIGP0__DATA_WIDTH PSU__USE__M_AXI_GP1 PSU__USE__M_AXI_GP2
                     PSU__USE__S_AXI_GP2 PSU__SAXIGP2__DATA_WIDTH PSU__FPGA_PL0_ENABLE
                     PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ PSU__USE__IRQ0}
    proc_sys_reset {}
    axi_intc {C_IRQ_CONNECTION C_KIND_OF_INTR C_IRQ_IS_LEVEL}
    smartconnect {NUM_SI NUM_MI NUM_CLKS}
}

proc version {args} { return 2023.2 }
proc current_project {args} { return ultratrain }
proc current_fileset {args} { return sources_1 }

proc create_project {args} {
    lassign [parse create_project {-force 0 -part 1} $args] o p
    if {[llength $p] != 2} { fail "create_project: name and directory expected, got $p" }
    if {![dict exists $o -part]} { fail "create_project: no -part" }
    set ::proj_dir [lindex $p 1]
    file mkdir $::proj_dir
    record create_project {*}$args
}
proc get_board_parts {args} {
    lassign [parse get_board_parts {-quiet 0 -latest_file_version 0} $args] o p
    if {[info exists ::env(STUB_BOARD)]} { return $::env(STUB_BOARD) }
    return ""
}
proc add_files {args} {
    lassign [parse add_files {-norecurse 0 -fileset 1} $args] o p
    foreach f [concat {*}$p] {
        if {![file exists $f]} { fail "add_files: $f does not exist" }
        lappend ::sources $f
    }
    record add_files {*}$args
}
proc update_compile_order {args} { parse update_compile_order {-fileset 1} $args; return }
proc create_bd_design {name} { set ::bd $name; record create_bd_design $name }

proc get_ipdefs {args} {
    lassign [parse get_ipdefs {-all 0 -filter 1} $args] o p
    if {![regexp {^VLNV =~ xilinx.com:ip:([a-z_]+):\*$} [dict get $o -filter] -> name]} {
        fail "get_ipdefs: unexpected filter [dict get $o -filter]"
    }
    if {![dict exists $::ipdefs $name]} { return "" }
    return [list "xilinx.com:ip:$name:[dict get $::ipdefs $name]"]
}

# The ports and interfaces a module reference gets from the wrapper's declarations.
proc module_ports {module} {
    foreach f $::sources {
        set fh [open $f]; set text [read $fh]; close $fh
        if {![regexp "module\\s+$module\\s*\\(" $text]} { continue }
        set pins {}; set intfs {}
        foreach {- name} [regexp -all -inline {(?:input|output)\s+wire\s+(?:\[\d+:0\]\s+)?(\w+)} $text] {
            lappend pins $name
        }
        foreach {- intf} [regexp -all -inline {X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 (\w+) } $text] {
            if {[lsearch $intfs $intf] < 0} { lappend intfs $intf }
        }
        return [list $pins $intfs]
    }
    fail "create_bd_cell: module $module is in none of the added sources ($::sources)"
}

proc create_bd_cell {args} {
    lassign [parse create_bd_cell {-type 1 -vlnv 1 -reference 1} $args] o p
    if {[llength $p] != 1} { fail "create_bd_cell: one cell name expected, got $p" }
    set name [lindex $p 0]
    switch -- [dict get $o -type] {
        ip {
            if {![regexp {^xilinx.com:ip:([a-z_]+):[0-9.]+$} [dict get $o -vlnv] -> ip]} {
                fail "create_bd_cell: bad VLNV [dict get $o -vlnv]"
            }
            dict set ::cells $name [list $ip [dict get $::pins $ip] [dict get $::intf_pins $ip]]
        }
        module {
            lassign [module_ports [dict get $o -reference]] pins intfs
            dict set ::cells $name [list module $pins $intfs]
        }
        default { fail "create_bd_cell: -type [dict get $o -type]" }
    }
    record create_bd_cell {*}$args
    return $name
}

proc cell_of {cmd path} {
    set cell [lindex [split $path /] 0]
    if {![dict exists $::cells $cell]} { fail "$cmd: no cell $cell (in $path)" }
    return [dict get $::cells $cell]
}
proc get_bd_pins {path} {
    lassign [cell_of get_bd_pins $path] type pins intfs
    set pin [lindex [split $path /] 1]
    if {[lsearch -exact $pins $pin] < 0} { fail "get_bd_pins: $type cell has no pin $pin" }
    return "pin:$path"
}
proc get_bd_intf_pins {path} {
    lassign [cell_of get_bd_intf_pins $path] type pins intfs
    set pin [lindex [split $path /] 1]
    if {[lsearch -exact $intfs $pin] < 0} { fail "get_bd_intf_pins: $type cell has no interface $pin" }
    return "intf:$path"
}
proc connect_bd_net {args} {
    if {[llength $args] < 2} { fail "connect_bd_net: needs two pins or more" }
    foreach a $args { if {![string match pin:* $a]} { fail "connect_bd_net: $a is not a pin" } }
    record connect_bd_net {*}[string map {pin: ""} $args]
}
proc connect_bd_intf_net {args} {
    if {[llength $args] != 2} { fail "connect_bd_intf_net: needs two interface pins" }
    foreach a $args { if {![string match intf:* $a]} { fail "connect_bd_intf_net: $a is not an interface pin" } }
    record connect_bd_intf_net {*}[string map {intf: ""} $args]
}
proc apply_bd_automation {args} {
    lassign [parse apply_bd_automation {-rule 1 -config 1} $args] o p
    record apply_bd_automation {*}$args
}
proc set_property {args} {
    if {[lindex $args 0] eq "-dict"} {
        set pairs [lindex $args 1]
        set obj [lindex $args 2]
        if {[llength $pairs] % 2} { fail "set_property -dict: odd list $pairs" }
        set type [lindex [cell_of set_property $obj] 0]
        foreach {k v} $pairs {
            if {![string match CONFIG.* $k]} { fail "set_property: $k is not a CONFIG property" }
            if {[lsearch -exact [dict get $::config_keys $type] [string range $k 7 end]] < 0} {
                fail "set_property: $type has no property $k"
            }
            record set_property $obj $k $v
        }
        return
    }
    if {[llength $args] != 3} { fail "set_property: name value object expected, got $args" }
    record set_property {*}$args
}
proc get_bd_addr_spaces {path} { cell_of get_bd_addr_spaces $path; return "space:$path" }
proc get_bd_addr_segs {path} {
    lassign [cell_of get_bd_addr_segs $path] type pins intfs
    if {[lsearch -exact $intfs [lindex [split $path /] 1]] < 0} { fail "get_bd_addr_segs: no interface in $path" }
    return "seg:$path"
}
proc assign_bd_address {args} {
    lassign [parse assign_bd_address {-offset 1 -range 1 -target_address_space 1 -force 0} $args] o p
    record assign_bd_address {*}$args
}
proc validate_bd_design {args} { record validate_bd_design }
proc save_bd_design {args} { record save_bd_design }
proc get_files {name} { return "$::proj_dir/ultratrain.srcs/sources_1/bd/$::bd/$name" }
proc make_wrapper {args} {
    lassign [parse make_wrapper {-files 1 -top 0} $args] o p
    set dir "$::proj_dir/ultratrain.gen/sources_1/bd/$::bd"
    file mkdir $dir/hdl $dir/hw_handoff
    set fh [open $dir/hdl/${::bd}_wrapper.v w]; puts $fh "module ${::bd}_wrapper(); endmodule"; close $fh
    set fh [open $dir/hw_handoff/$::bd.hwh w]; puts $fh "<hwh stub/>"; close $fh
    record make_wrapper {*}$args
    return $dir/hdl/${::bd}_wrapper.v
}
proc launch_runs {args} {
    lassign [parse launch_runs {-to_step 1 -jobs 1} $args] o p
    if {[dict get $o -to_step] ne "write_bitstream"} { fail "launch_runs: -to_step [dict get $o -to_step]" }
    file mkdir $::proj_dir/ultratrain.runs/impl_1
    set fh [open $::proj_dir/ultratrain.runs/impl_1/${::bd}_wrapper.bit w]; puts $fh "bit stub"; close $fh
    record launch_runs {*}$args
}
proc wait_on_run {run} { record wait_on_run $run }
proc get_runs {run} { return "run:$run" }
proc open_run {run} { record open_run $run }
proc get_timing_paths {args} { parse get_timing_paths {-max_paths 1 -nworst 1 -setup 0} $args; return path:worst }
proc get_property {name obj} {
    switch -- $name {
        PROGRESS { return "100%" }
        DIRECTORY { return $::proj_dir/ultratrain.runs/impl_1 }
        SLACK { if {[info exists ::env(STUB_WNS)]} { return $::env(STUB_WNS) }; return 0.412 }
        default { fail "get_property: $name" }
    }
}
proc report_utilization {args} {
    lassign [parse report_utilization {-file 1 -hierarchical 0} $args] o p
    set fh [open [dict get $o -file] w]; puts $fh "utilization stub"; close $fh
}
proc report_timing_summary {args} {
    lassign [parse report_timing_summary {-file 1} $args] o p
    set fh [open [dict get $o -file] w]; puts $fh "timing stub"; close $fh
}
