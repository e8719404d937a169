#!/usr/bin/perl
# Matrix driver for Net::DBus (Perl binding of libdbus). usage: net-dbus.pl SCENARIO
use strict;
use warnings;
use Digest::SHA qw(sha256_hex);
use POSIX ();
use Net::DBus qw(:typing);
use Net::DBus::Reactor;
use Net::DBus::Binding::Bus;
use Net::DBus::Binding::Message::MethodCall;

my $IFACE = 'org.kdbusbridge.Compat';
my $OPATH = '/org/kdbusbridge/Compat';
my $DBUS = 'org.freedesktop.DBus';
my $FIX = $ENV{COMPAT_FIXTURE} || "$IFACE.Fixture";
my $CALLEE = $ENV{COMPAT_CALLEE} || "$IFACE.Callee";
my $MATCH_RULE = "type='signal',interface='$IFACE',member='Tick',arg0='yes',arg1='b1',path_namespace='$OPATH/ns'";
my $END_RULE = "type='signal',interface='$IFACE',member='End'";
my @EXPECTED_TICKS = ("$OPATH/ns", "$OPATH/ns/a/b");

sub fail { die { failure => join('', @_) } }
sub check { my ($cond, $what) = @_; fail($what) unless $cond }
sub equal {
    my ($got, $want, $what) = @_;
    $got = defined $got ? $got : '(undef)';
    fail("$what: got '$got', want '$want'") unless $got eq $want;
}
sub token { sprintf('t%012x', int(rand(2**47))) }

# A private connection each: the shared one would make A, B and C one client.
sub connect_to {
    Net::DBus->_new(Net::DBus::Binding::Bus->new(address => shift || $ENV{COMPAT_ADDRESS}, private => 1));
}
sub fixture { $_[0]->get_service($FIX)->get_object($OPATH, $IFACE) }

# Runs the main loop, handing every incoming message to $until until it says so or 5 s pass.
sub collect {
    my ($bus, $until, $start) = @_;
    my $reactor = Net::DBus::Reactor->main;
    my $done = 0;
    $bus->get_connection->add_filter(sub {
        my (undef, $msg) = @_;
        $done ||= $until->($msg);
        $reactor->shutdown if $done;
        return 1;
    });
    $start->() if $start;
    # Messages read while a blocking call waited are queued, not signalled to the loop.
    for (1 .. 1000) { last if $done || $bus->get_connection->dispatch != 0 }
    my $timer = $reactor->add_timeout(5000, sub { $reactor->shutdown });
    $reactor->run unless $done;
    $reactor->remove_timeout($timer);
    return $done;
}
sub is_signal { my ($m, $iface, $member) = @_; $m->get_type == 4 && ($m->get_interface // '') eq $iface && $m->get_member eq $member }
sub error_of {
    my ($code) = @_;
    eval { $code->(); 1 } and fail('call returned');
    my $err = $@;
    die $err if ref $err eq 'HASH';
    check(ref $err && $err->isa('Net::DBus::Error'), "not a D-Bus error: $err");
    return ($err->name, $err->message);
}

sub hello {
    my $bus = connect_to(shift);
    my $me = $bus->get_unique_name;
    check($me =~ /^:/, "unique name $me");
    my $driver = $bus->get_bus_object;
    equal($driver->GetNameOwner($me), $me, 'GetNameOwner(self)');
    check(grep({ $_ eq $DBUS } @{ $driver->ListNames }), 'ListNames lacks the driver');
}

my %scenarios = (
    'hello-unix' => sub { hello($ENV{COMPAT_ADDRESS}) },
    'hello-tcp' => sub { hello($ENV{COMPAT_TCP_ADDRESS}) },
    names => sub {
        my ($a, $b, $c) = (connect_to(), connect_to(), connect_to());
        my $name = 'org.kdbusbridge.Compat.N' . token();
        my $da = $a->get_bus_object;
        equal($da->RequestName($name, 1 | 4), 1, 'A RequestName');
        equal($b->get_bus_object->RequestName($name, 4), 3, 'B RequestName DO_NOT_QUEUE');
        equal($b->get_bus_object->RequestName($name, 0), 2, 'B RequestName queued');
        equal(join(' ', @{ $da->ListQueuedOwners($name) }), join(' ', $a->get_unique_name, $b->get_unique_name), 'ListQueuedOwners');
        equal($c->get_bus_object->RequestName($name, 2 | 4), 1, 'C RequestName REPLACE_EXISTING');
        equal($da->GetNameOwner($name), $c->get_unique_name, 'owner after replacement');
        equal($c->get_bus_object->ReleaseName($name), 1, 'C ReleaseName');
        equal($da->GetNameOwner($name), $b->get_unique_name, 'owner after release');
        my $named = sub { my ($member) = @_; sub { is_signal($_[0], $DBUS, $member) && ($_[0]->get_args_list)[0] eq $name } };
        check(collect($a, $named->('NameLost')), 'A got no NameLost');
        check(collect($b, $named->('NameAcquired')), 'B got no NameAcquired');
    },
    call => sub {
        my $bus = connect_to();
        my $fix = fixture($bus);
        my $t = token();
        equal($fix->Echo($t), $t, 'Echo');
        equal($fix->Add(dbus_int32(40), dbus_int32(2)), 42, 'Add');
        my ($name, $message) = error_of(sub { $fix->Fail('boom') });
        equal($name, "$IFACE.Error.Failed", 'error name');
        equal($message, 'boom', 'error message');
        ($name) = error_of(sub { $bus->get_bus_object->GetNameOwner('org.kdbusbridge.Nobody') });
        equal($name, "$DBUS.Error.NameHasNoOwner", 'GetNameOwner(nobody)');
    },
    signals => sub {
        my $bus = connect_to();
        $bus->get_connection->add_match($_) for ($MATCH_RULE, $END_RULE);
        my @ticks;
        my $ended = collect($bus, sub {
            my ($m) = @_;
            push @ticks, $m->get_path if is_signal($m, $IFACE, 'Tick') || is_signal($m, $IFACE, 'Tock');
            return is_signal($m, $IFACE, 'End');
        }, sub { fixture($bus)->EmitMatches });
        check($ended, 'no End signal');
        equal("@ticks", "@EXPECTED_TICKS", 'matched signals');
    },
    unicast => sub {
        my ($bus, $observer) = (connect_to(), connect_to());
        $observer->get_connection->add_match("type='signal',interface='$IFACE'");
        my $t = token();
        my $got;
        check(collect($bus, sub { is_signal($_[0], $IFACE, 'Unicast') && ($got = ($_[0]->get_args_list)[0]) },
                      sub { fixture($bus)->EmitTo($bus->get_unique_name, $t) }), 'unicast signal missing');
        equal($got, $t, 'unicast body');
        my $leaked = 0;
        check(collect($observer, sub { $leaked ||= is_signal($_[0], $IFACE, 'Unicast'); is_signal($_[0], $IFACE, 'End') }),
              'observer saw no End');
        check(!$leaked, 'a unicast signal reached a non-recipient');
    },
    fds => sub {
        my $bus = connect_to();
        my $fix = fixture($bus);
        my $t = token();
        pipe(my $r, my $w) or fail('pipe');
        syswrite($w, $t);
        close($w);
        equal($fix->ReadFd(dbus_unix_fd(fileno($r))), $t, 'ReadFd');
        my $fd = $fix->MakeFd($t);
        check(defined $fd && $fd =~ /^\d+$/, 'MakeFd returned no fd');
        POSIX::read($fd, my $buf, 4096);
        equal($buf, $t, 'MakeFd content');
    },
    properties => sub {
        my $bus = connect_to();
        my $obj = $bus->get_service($FIX)->get_object($OPATH, 'org.freedesktop.DBus.Properties');
        equal($obj->Get($IFACE, 'Name'), 'compat-fixture', 'Get Name');
        $obj->Set($IFACE, 'Count', dbus_variant(dbus_int32(42)));
        equal($obj->Get($IFACE, 'Count'), 42, 'Get Count after Set');
        equal($obj->GetAll($IFACE)->{Count}, 42, 'GetAll Count');
        my $xml = $bus->get_service($FIX)->get_object($OPATH, 'org.freedesktop.DBus.Introspectable')->Introspect;
        check(index($xml, qq(<interface name="$IFACE">)) >= 0 && index($xml, 'name="Echo"') >= 0, 'Introspect lacks the interface');
    },
    monitor => sub {
        my ($mon, $bus) = (connect_to(), connect_to());
        $mon->get_service($DBUS)->get_object('/org/freedesktop/DBus', 'org.freedesktop.DBus.Monitoring')->BecomeMonitor(dbus_array([]), dbus_uint32(0));
        my $t = token();
        my %seen;
        # The filter claims every message: a monitor must not answer calls.
        check(collect($mon, sub {
            my ($m) = @_;
            $seen{$m->get_type} = 1 if $m->get_type <= 2 && grep { defined $_ && $_ eq $t } $m->get_args_list;
            return $seen{1} && $seen{2};
        }, sub { equal(fixture($bus)->Echo($t), $t, 'Echo') }), 'monitor did not see the call and its reply');
    },
    noreply => sub {
        my $bus = connect_to();
        $bus->get_connection->add_match("type='signal',sender='$DBUS',member='NameOwnerChanged',arg0='$CALLEE'");
        my $owner = $bus->get_bus_object->GetNameOwner($CALLEE);
        # Net::DBus consumes NameOwnerChanged in its own filter, so its signal API is the way to see it.
        my @args;
        my $reactor = Net::DBus::Reactor->main;
        $bus->get_bus_object->connect_to_signal('NameOwnerChanged', sub {
            return unless $_[0] eq $CALLEE;
            @args = @_;
            $reactor->shutdown;
        });
        my ($name) = error_of(sub { $bus->get_service($CALLEE)->get_object($OPATH, $IFACE)->Hang });
        equal($name, "$DBUS.Error.NoReply", 'error of the pending call');
        for (1 .. 100) { last if @args; $bus->get_connection->dispatch }
        unless (@args) {
            $reactor->add_timeout(5000, sub { $reactor->shutdown });
            $reactor->run;
        }
        check(scalar @args, 'no NameOwnerChanged');
        equal(join('|', @args), join('|', $CALLEE, $owner, ''), 'NameOwnerChanged');
    },
);

my $fn = $scenarios{$ARGV[0] // ''};
unless ($fn) { print STDERR "not expressible with this client\n"; exit 77 }
eval { $fn->(); 1 } and exit 0;
my $err = $@;
my $why = ref $err eq 'HASH' ? $err->{failure} : ref $err && $err->isa('Net::DBus::Error') ? $err->name . ': ' . $err->message : "$err";
$why =~ s/\n/ /g;
print STDERR "$why\n";
exit 1;
